// install.sh for a 64-bit Raspberry Pi, run on x86_64 with qemu-user standing in for the Pi:
// the aarch64 Node fetched from the npm registry, and the installed aarch64 command joining an
// x86_64 node's network. Apart from install.test.ts (the installs share nothing but the
// caches), so `npm test` runs it beside the daemon files, where it mostly keeps one core busy.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { rmSync, readFileSync, existsSync, openSync, readSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { Cluster, waitFor, capabilities, titled, QEMU_AARCH64, AARCH64_SYSROOT, type TestNode } from '../harness/index.ts'
import { ApiClient } from '../../node/api/index.ts'
import { Home } from '../../node/home/index.ts'
import { INSTALL, installRoot, run } from './installer.ts'

const { arm64, arm64Binfmt } = capabilities()

describe('install.sh for aarch64', () => {
  const { root, env } = installRoot()
  const cluster = new Cluster()
  let founder: TestNode

  beforeAll(async () => {
    founder = cluster.newNode('founder')
    await founder.start()
  }, 60_000)
  afterAll(async () => {
    await cluster.destroy()
    rmSync(root, { recursive: true, force: true })
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
})
