import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync, unlinkSync, statSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { Cluster, TestNode, sleep } from '../harness/index.ts'

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
})
