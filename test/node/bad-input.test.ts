import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync, unlinkSync, statSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { Cluster, TestNode, sleep, waitFor } from '../harness/index.ts'

/** Content hashes of every file in a home (the daemon's own log aside). */
function snapshot (dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    // the running daemon's own log and its record of recently seen peers change by themselves
    if (name === 'daemon.log' || name === 'known-peers.json' || !statSync(path).isFile()) continue
    out[name] = createHash('sha256').update(readFileSync(path)).digest('hex')
  }
  return out
}

function expectOneLineError (r: { code: number, stderr: string }, pattern: RegExp): void {
  expect(r.code).not.toBe(0)
  const first = r.stderr.trim().split('\n')[0]
  expect(first).toMatch(/^mycelium: /)
  expect(r.stderr).toMatch(pattern)
}

describe('bad input gets one clear error and leaves the home intact', () => {
  const cluster = new Cluster()
  let founder: TestNode
  let member: TestNode

  beforeAll(async () => {
    [founder, member] = await cluster.startNetwork(2)
  }, 90_000)
  afterAll(async () => { await cluster.destroy() })

  it('unknown commands and options', async () => {
    const before = snapshot(founder.home)
    expectOneLineError(await founder.cli(['frobnicate']), /unknown command "frobnicate"/)
    expectOneLineError(await founder.cli(['network', 'explode']), /unknown command "network explode".*try: network create/)
    expectOneLineError(await founder.cli(['status', '--colour']), /unknown option --colour/)
    expectOneLineError(await founder.cli(['network', 'invite', '--ttl', 'forever']), /not a duration/)
    expect(snapshot(founder.home)).toEqual(before)
  })

  it('malformed, truncated, expired and reused invites', async () => {
    const fresh = cluster.newNode('fresh')
    expectOneLineError(await fresh.cli(['join', 'hello']), /invite must start with "myc1\."/)
    const good = await cluster.invite(founder)
    expectOneLineError(await fresh.cli(['join', good.slice(0, good.length - 20)]), /malformed|copied whole/)
    const shortLived = await cluster.invite(founder, ['--ttl', '1s'])
    await sleep(1200)
    expectOneLineError(await fresh.cli(['join', shortLived]), /expired/)
    expect(readdirSync(fresh.home).filter(f => f !== 'node.key')).toEqual([])

    const once = await cluster.invite(founder)
    expect((await fresh.cli(['join', once])).code).toBe(0)
    const other = cluster.newNode('other')
    expectOneLineError(await other.cli(['join', once]), /already used/)
    expect(readdirSync(other.home).filter(f => f !== 'node.key')).toEqual([])

    // joining twice would overwrite the membership: refused
    const before = snapshot(fresh.home)
    expectOneLineError(await fresh.cli(['join', await cluster.invite(founder)]), /already a member/)
    expect(snapshot(fresh.home)).toEqual(before)
  })

  it('creating a network in a home that has one is refused', async () => {
    const before = snapshot(member.home)
    expectOneLineError(await member.cli(['network', 'create', 'second']), /already a member of network/)
    expectOneLineError(await member.cli(['network', 'invite']), /does not hold the root key/)
    expect(snapshot(member.home)).toEqual(before)
  })

  it('a missing or corrupted key file stops the start without touching anything', async () => {
    const home = mkdtempSync(join(tmpdir(), 'myc-keys-'))
    const node = new TestNode({ name: 'keys', home })
    expect((await node.cli(['network', 'create', 'keys'])).code).toBe(0)
    const keyBytes = readFileSync(join(home, 'node.key'))

    writeFileSync(join(home, 'node.key'), Buffer.from('not a key'))
    let before = snapshot(home)
    await expect(node.start()).rejects.toThrow(/node key .* is corrupted/)
    expect(snapshot(home)).toEqual(before)

    unlinkSync(join(home, 'node.key'))
    before = snapshot(home)
    await expect(node.start()).rejects.toThrow(/node.key is missing/)
    expect(snapshot(home)).toEqual(before)

    writeFileSync(join(home, 'network.json'), '{ "networkId": 12')
    writeFileSync(join(home, 'node.key'), keyBytes)
    before = snapshot(home)
    await expect(node.start()).rejects.toThrow(/network.json is corrupted/)
    expect(snapshot(home)).toEqual(before)
    rmSync(home, { recursive: true, force: true })
  })

  it('ports in use', async () => {
    const blocker: Server = createServer()
    await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as { port: number }).port
    try {
      const node = cluster.newNode('ports')
      await node.cli(['network', 'create', 'ports'])
      const before = snapshot(node.home)
      const apiBusy = await node.cli(['start', '--api-port', String(port), '--listen', '/ip4/127.0.0.1/tcp/0'])
      expectOneLineError(apiBusy, new RegExp(`admin API port ${port} is in use`))
      const listenBusy = await node.cli(['start', '--api-port', '0', '--listen', `/ip4/127.0.0.1/tcp/${port}`])
      expectOneLineError(listenBusy, /listen port is in use|cannot listen/)
      expect(snapshot(node.home)).toEqual(before)
    } finally {
      blocker.close()
    }
  })

  it('a workloads setting that is not a number of milliseconds stops the start with one line', async () => {
    const node = cluster.newNode('grace')
    await node.cli(['network', 'create', 'grace'])
    const r = await node.cli(['start', '--api-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0', '--http-listen', 'off'], { env: { MYCELIUM_APPS_GRACE_MS: '10m' } })
    expectOneLineError(r, /^mycelium: MYCELIUM_APPS_GRACE_MS must be a whole number of milliseconds, at least 1000 \(got "10m"\)$/m)
  })
})

describe('no secret in the log, no request that kills a node', async () => {
  const { REPO_ROOT } = await import('../harness/index.ts')
  const { raw, get, HOSTILE } = await import('../harness/raw-http.ts')
  const cluster = new Cluster()
  afterAll(async () => { await cluster.destroy() })

  it('the start logs how to make an invite, never an invite', async () => {
    const admin = cluster.newNode('admin')
    await admin.start()
    const log = admin.log()
    expect(log).not.toMatch(/myc1\./)
    const ready = log.split('\n').find(l => l.includes('"node ready"'))
    expect(ready).toBeDefined()
    expect(JSON.parse(ready!).invites).toBe('mycelium network invite')

    // the operator still gets one on request, and issuing it logs nothing secret either
    const invite = await cluster.invite(admin)
    expect(invite).toMatch(/^myc1\./)
    const member = cluster.newNode('member')
    expect((await member.cli(['join', invite])).code).toBe(0)
    await member.start()
    expect(admin.log()).not.toMatch(/myc1\./)
    expect(member.log()).not.toMatch(/myc1\./)
    expect(JSON.parse(member.log().split('\n').find(l => l.includes('"node ready"'))!).invites).toMatch(/administrator/)
  })

  it('hostile raw requests to the public HTTP server: the daemon answers them and lives', async () => {
    const node = cluster.newNode('http', { startArgs: ['--http-port', '0', '--role', 'sclerotium'] })
    await node.start()
    const { httpUrl } = await node.api<{ httpUrl: string }>('/status')
    const port = Number(new URL(httpUrl).port)
    const page = readFileSync(join(REPO_ROOT, 'dist/browser/index.html'), 'utf8')
    expect((await raw(port, get('/'))).text).toContain(page.slice(0, 64))
    for (const [name, request] of HOSTILE) {
      const answer = await raw(port, request, 500)
      expect([0, 400, 404, 405, 413, 414, 431], name).toContain(answer.status)
      expect(answer.text, name).not.toMatch(/root:x?:0:0/)
      expect(node.running(), `the daemon is still running after "${name}" (exit code ${String(node.process?.exitCode)})`).toBe(true)
    }
    expect((await raw(port, get('//'))).status).toBe(400)
    expect(node.running()).toBe(true)
    const after = await raw(port, get('/'))
    expect(after.status).toBe(200)
    expect(after.text).toContain(page.slice(0, 64))
    for (const target of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fetc%2fpasswd', '/../node.key', '/%2e%2e/network-root.key']) {
      expect((await raw(port, get(target))).status, target).toBe(404)
    }
    expect(node.log()).not.toMatch(/ERR_INVALID_URL|Invalid URL/)
  })

  it('the public HTTP server is open only while the node is a sclerotium, where --http-listen says', async () => {
    const node = cluster.newNode('web', { startArgs: ['--http-listen', '127.0.0.1:0', '--role', 'rhizomorph'] })
    expectOneLineError(await node.cli(['start', '--http-listen', 'every:where:80']), /--http-listen must be HOST, HOST:PORT/)
    expectOneLineError(await node.cli(['start', '--label', 'zone']), /--label takes KEY=VALUE/)
    expectOneLineError(await node.cli(['start', '--label', `zone=${'x'.repeat(65)}`]), /at most 64 characters/)
    await node.start()
    // a rhizomorph serves no page: strangers get no socket at all
    expect((await node.api<{ httpUrl?: string }>('/status')).httpUrl ?? undefined).toBeUndefined()
    expect((await node.cli(['role', '--set', 'sclerotium'])).code).toBe(0)
    const url = await waitFor(async () => (await node.api<{ httpUrl?: string }>('/status')).httpUrl, { timeoutMs: 10_000, what: 'the web client to be served once the node is a sclerotium' })
    const port = Number(new URL(url).port)
    expect((await raw(port, get('/'))).status).toBe(200)
    expect((await node.cli(['role', '--set', 'rhizomorph'])).code).toBe(0)
    await waitFor(async () => ((await node.api<{ httpUrl?: string }>('/status')).httpUrl ?? undefined) === undefined, { timeoutMs: 10_000, what: 'the server to close once the node is no sclerotium' })
    expect((await raw(port, get('/'), 300)).status).toBe(0)
  })
})
