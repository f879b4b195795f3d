// The spores on real daemons (separate processes, joined through invites): convergence,
// reconciliation after a node was away, a Byzantine member, seed files and limits.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { readFileSync, writeFileSync } from 'node:fs'
import { Cluster, TestNode, waitFor, NODE, REPO_ROOT } from '../harness/index.ts'
import { ApiClient } from '../../node/api/index.ts'
import { Home } from '../../node/home/index.ts'

const WINDOW_MS = 600_000
const SERVICE_LIMIT = 40
const FLOOD = 120
const env = {
  MYCELIUM_SPORES_PUBLISH_MS: '5000',
  // every own entry every 5 s, changed or not: the catch-up test waits on the daemons' own publications
  MYCELIUM_SPORES_REFRESH_MS: '5000',
  MYCELIUM_SPORES_SYNC_MS: '5000',
  MYCELIUM_SPORES_WINDOW_MS: String(WINDOW_MS),
  MYCELIUM_SPORES_MAX_ENTRIES: `service=${SERVICE_LIMIT}`
}

interface Entry { type: string, key: string, origin: string, seq: number, issuedAt: number, value: any }

/** How long gossipsub serves a message from its cache: 5 heartbeats of 1 s (js-gossipsub defaults), and a margin. */
const GOSSIP_CACHE_MS = 6000

function total (counts: Record<string, number> = {}): number {
  return Object.values(counts).reduce((a, b) => a + b, 0)
}

/** Polls go to the admin API the CLI uses; a CLI process per poll would slow the whole test down. */
async function get<T = any> (node: TestNode, path: string): Promise<T> {
  return await ApiClient.forHome(new Home(node.home)).request<T>('GET', path)
}

async function ls (node: TestNode, query = ''): Promise<Entry[]> {
  return await get<Entry[]>(node, `/spores${query === '' ? '' : `?${query}`}`)
}

describe('spores on six real daemons', () => {
  const cluster = new Cluster({ node: () => ({ env }) })
  let nodes: TestNode[]

  beforeAll(async () => {
    nodes = await cluster.startNetwork(6)
    await cluster.waitForFullMesh(60_000)
  }, 150_000)
  afterAll(async () => { await cluster.destroy() })

  it('every node holds the same service record within 10 s of its publication', async () => {
    const r = await nodes[2].cliJson<Entry>(['spores', 'publish-service', 'web', '/ip4/127.0.0.1/tcp/8080', 'https://web.example'])
    const published = Date.now()
    const seen = await waitFor(async () => {
      const views = await Promise.all(nodes.map(async n => (await ls(n, 'type=service')).find(e => e.key === r.key)))
      return views.every(v => v !== undefined && v.seq === r.seq) ? views : undefined
    }, { timeoutMs: 10_000, intervalMs: 100, what: 'the service record on every node' })
    expect(Date.now() - published).toBeLessThan(10_000)
    for (const v of seen) expect(v).toEqual({ type: 'service', key: `${nodes[2].peerId}/web`, origin: nodes[2].peerId, seq: r.seq, issuedAt: r.issuedAt, value: { name: 'web', endpoints: ['/ip4/127.0.0.1/tcp/8080', 'https://web.example'] } })
    // and each node's own `node` entry has reached all the others, signed by its owner
    let missing: string[] = []
    await waitFor(async () => {
      missing = []
      for (const n of nodes) {
        const keys = (await ls(n, 'type=node')).filter(e => e.origin === e.key).map(e => e.key)
        for (const o of nodes) if (!keys.includes(o.peerId)) missing.push(`${n.name} lacks ${o.name}`)
      }
      return missing.length === 0
    }, { timeoutMs: 45_000, intervalMs: 300, what: 'every node entry on every node' }).catch(async (err) => {
      const stats = await Promise.all(nodes.map(async n => JSON.stringify({ node: n.name, rejections: (await get(n, '/spores/stats')).tiers.latent.node.rejections })))
      throw new Error(`${(err as Error).message}: ${missing.join(', ')}; ${stats.join(' ')}`)
    })
    const mine = (await ls(nodes[0], 'type=node')).find(e => e.key === nodes[0].peerId)
    expect(mine?.value.hardware).toMatchObject({ cores: expect.any(Number), memoryMiB: expect.any(Number), arch: expect.any(String) })
    expect(mine?.value.addrs.length).toBeGreaterThan(0)
  })

  it('a node that was stopped catches up by anti-entropy sync when it returns, and the traffic is counted', async () => {
    const away = nodes[5]
    await away.stop()
    // published while it is away: gossip cannot bring it back, only sync can
    const r = await nodes[1].cliJson<Entry>(['spores', 'publish-service', 'api', '/ip4/127.0.0.1/tcp/9090'])
    // Gossip could still bring the record back while some node holds it in gossipsub's message
    // cache (GOSSIP_CACHE_MS). No API shows that cache, so wait on the daemons' own progress
    // rather than the test's clock: the record is on every running node, and each of them has
    // since published its own entries (a timer in the same event loop as the heartbeat) more
    // than the cache's lifetime after the record was issued. A starved machine waits longer.
    const present = nodes.filter(n => n !== away)
    await waitFor(async () => {
      for (const n of present) {
        if (!(await ls(n, 'type=service')).some(e => e.key === r.key && e.seq === r.seq)) return false
        const own = (await ls(n, 'type=health')).find(e => e.key === n.peerId)
        if (own === undefined || own.issuedAt < r.issuedAt + GOSSIP_CACHE_MS) return false
      }
      return true
    }, { timeoutMs: 30_000, intervalMs: 500, what: 'the record on every running node, and each of them past the gossip cache' })
    await away.start()
    await waitFor(async () => (await ls(away, 'type=service')).some(e => e.key === r.key && e.seq === r.seq), { timeoutMs: 30_000, intervalMs: 500, what: 'the record published while away' })
    const stats = await away.cliJson(['spores', 'stats'])
    expect(stats.sync.sessions).toBeGreaterThan(0)
    expect(stats.sync.bytesReceived).toBeGreaterThan(0)
    expect(stats.sync.pulled).toBeGreaterThan(0)
    const human = await away.cli(['spores', 'stats'])
    expect(human.stdout).toMatch(/sync\s+\d+ sessions/)
  })

  it('a Byzantine member gossiping bad entries changes nothing on the honest nodes; each rejection is counted', async () => {
    const byz = cluster.newNode('byz', { env })
    await cluster.join(byz, nodes[0])
    const victim = nodes[3]
    const before = (await ls(victim, 'type=node')).find(e => e.key === victim.peerId)
    const addrs = await Promise.all(nodes.map(async n => (await get(n, '/status')).addrs.find((a: string) => a.includes('/tcp/') && !a.includes('/ws')) as string))
    // it stays connected after its report (--linger) until its stdin is closed
    const byzProcess = spawn(NODE, [join(REPO_ROOT, 'test/spores/byzantine-member.ts'), '--home', byz.home, '--window-ms', String(WINDOW_MS), '--flood', String(FLOOD), '--victim', victim.peerId, '--linger', ...addrs],
      { stdio: ['pipe', 'pipe', 'pipe'], timeout: 120_000 })
    const exited = new Promise<void>(resolve => byzProcess.once('exit', () => { resolve() }))
    const report = await new Promise<{ peerId: string, outsider: string, sent: Record<string, number> }>((resolve, reject) => {
      let out = ''
      let err = ''
      byzProcess.stderr.on('data', (d: Buffer) => { err += d.toString() })
      byzProcess.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes('\n')) resolve(JSON.parse(out.slice(0, out.indexOf('\n'))))
      })
      byzProcess.once('exit', (code) => { reject(new Error(`the Byzantine member exited (${code}) before its report\n${err}`)) })
    })
    expect(report.sent.flood).toBe(FLOOD)
    // the flood of one origin stops at that origin's share of the type (1/16 of its limit, at least 16), before the type is full
    const expected = ['bad-signature', 'unauthorized-origin', 'unknown-origin', 'replay', 'oversized', 'malformed', 'schema', 'expired', 'future', 'outside-window', 'origin-limit']
    for (const n of nodes) {
      await waitFor(async () => {
        const s = await get(n, '/spores/stats')
        const counted: Record<string, number> = {}
        for (const byType of Object.values<any>(s.tiers.latent)) for (const [reason, c] of Object.entries<number>(byType.rejections)) counted[reason] = (counted[reason] ?? 0) + c
        for (const [reason, c] of Object.entries<number>(s.undecodable.latent)) counted[reason] = (counted[reason] ?? 0) + c
        return expected.every(r => (counted[r] ?? 0) > 0)
      }, { timeoutMs: 20_000, intervalMs: 300, what: `every rejection reason counted on ${n.name}` })
    }
    // gossipsub now ignores the flooder on every honest node (its score is past the graylist
    // threshold), while no honest member lost score for forwarding or for its own traffic
    for (const n of nodes) {
      const peers = await get<Array<{ peerId: string, gossipScore: number, gossipIgnored: boolean }>>(n, '/peers')
      expect(peers.find(p => p.peerId === report.peerId)?.gossipIgnored, n.name).toBe(true)
      for (const p of peers.filter(p => p.peerId !== report.peerId)) expect(p.gossipScore, `${n.name}'s score of ${p.peerId}`).toBeGreaterThanOrEqual(0)
    }
    expect((await victim.cli(['peers'])).stdout).toContain(`${report.peerId}`)
    expect((await victim.cli(['peers'])).stdout).toMatch(/\[gossip ignored, score -\d+/)
    byzProcess.stdin.end()
    await exited
    const metrics = (await victim.cli(['metrics'])).stdout
    expect(metrics).toMatch(/mycelium_spore_rejections_total\{tier="latent",type="node",reason="unauthorized-origin"\} [1-9]/)
    for (const n of nodes) {
      const all = await ls(n)
      expect(all.some(e => e.origin === report.outsider || e.key === report.outsider)).toBe(false)
      expect(all.some(e => JSON.stringify(e.value).includes('6.6.6.6'))).toBe(false)
      for (const e of all) if (e.type === 'node' || e.type === 'health') expect(e.origin).toBe(e.key)
      expect(all.some(e => e.origin === report.peerId && e.type === 'health' && Math.abs(e.issuedAt - Date.now()) > WINDOW_MS)).toBe(false)
      // the flood stops at the flooder's share, leaving the type's room to the others
      expect(all.filter(e => e.type === 'service' && e.origin === report.peerId).length).toBeLessThanOrEqual(16)
      expect(all.filter(e => e.type === 'service').length).toBeLessThanOrEqual(SERVICE_LIMIT)
      const stats = await get(n, '/spores/stats')
      expect(stats.tiers.latent.service.count).toBeLessThanOrEqual(SERVICE_LIMIT)
      expect(stats.tiers.latent.service.limit).toBe(SERVICE_LIMIT)
    }
    const after = (await ls(victim, 'type=node')).find(e => e.key === victim.peerId)
    expect(after?.origin).toBe(victim.peerId)
    expect(after?.value.addrs).toEqual(before?.value.addrs)
  })

  it('a seed file is merged only for the nodes the importer reaches and confirms', async () => {
    const seedFile = join(nodes[0].home, 'net.seed')
    const exported = await nodes[0].cliJson(['spores', 'export-seed', seedFile, '--all-nodes'])
    expect(exported.nodes).toBeGreaterThanOrEqual(6)
    const gone = nodes[4]
    await gone.stop()
    const importer = nodes[5]
    const tampered = join(importer.home, 'tampered.seed')
    const bytes = readFileSync(seedFile)
    bytes[bytes.length - 80] ^= 0x01
    writeFileSync(tampered, bytes)
    const bad = await importer.cli(['spores', 'import-seed', tampered])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr.trim().split('\n')).toHaveLength(1)
    expect(bad.stderr).toMatch(/mycelium: .*seed/)
    expect(await ls(importer, 'tier=seed')).toEqual([])

    const r = await importer.cliJson(['spores', 'import-seed', seedFile])
    expect(r.quarantined.map((q: any) => q.peerId)).toContain(gone.peerId)
    expect(r.confirmed).not.toContain(gone.peerId)
    for (const n of nodes.slice(0, 4)) expect(r.confirmed).toContain(n.peerId)
    const cliView = await importer.cliJson<Entry[]>(['spores', 'ls', '--tier', 'seed', '--type', 'node'])
    const seeded = cliView.map(e => e.key)
    for (const e of cliView) expect(Object.keys(e)).toEqual(expect.arrayContaining(['type', 'key', 'origin', 'seq', 'issuedAt', 'value']))
    expect(seeded).not.toContain(gone.peerId)
    expect(seeded.sort()).toEqual(r.confirmed.filter((id: string) => seeded.includes(id)).sort())
    // a primary epoch certified after the import drops seed records it overrides (merger.dropOverridden)
    expect(seeded.length).toBeLessThanOrEqual(r.merged)
    expect(seeded.length).toBeGreaterThan(0)
    const human = await importer.cli(['spores', 'import-seed', seedFile])
    expect(human.stdout).toMatch(new RegExp(`quarantined\\s+${gone.peerId}`))
    expect((await importer.cliJson(['spores', 'quarantine'])).map((q: any) => q.peerId)).toEqual([gone.peerId])

    // the seed's record of the node waits in quarantine
    const held = (await get<Array<{ peerId: string, entries: number }>>(importer, '/spores/seed/quarantine')).find(q => q.peerId === gone.peerId)?.entries ?? 0
    expect(held).toBeGreaterThan(0)

    // once the node is back, a retry confirms it and merges its entry
    await gone.start()
    // it listens on a new port now: the importer learns where from the spores and the roster
    await waitFor(async () => (await importer.peers()).some(p => p.peerId === gone.peerId), { timeoutMs: 30_000, intervalMs: 500, what: 'the importer to reach the returned node' })
    let before: any
    const retried = await waitFor(async () => {
      before = await get(importer, '/spores/stats')
      const r = await importer.cliJson(['spores', 'quarantine', '--retry'])
      return r.confirmed.length > 0 ? r : undefined
    }, { timeoutMs: 30_000, intervalMs: 1000, what: 'the returned node to be confirmed' })
    expect(retried.confirmed).toEqual([gone.peerId])
    const seededNow = (await ls(importer, 'tier=seed&type=node')).map(e => e.key)
    const after = await get(importer, '/spores/stats')
    const refused: Record<string, number> = {}
    for (const [reason, n] of Object.entries<number>(after.tiers.seed.node.rejections)) {
      const more = n - (before.tiers.seed.node.rejections[reason] ?? 0)
      if (more > 0) refused[reason] = more
    }
    // the retry did something with every entry the seed held for the node: merged it into the
    // seed tier or refused it for a counted reason (a retry that did nothing does neither)
    expect(retried.merged + total(refused)).toBe(held)
    if (retried.merged > 0) {
      // only a seed import writes the seed tier, and it lacked the node until now; a primary
      // epoch since the retry may have dropped the record again in favour of a newer one
      if (after.primaryEpoch === before.primaryEpoch) expect(seededNow).toContain(gone.peerId)
    } else {
      // the seed's record is stale once the node's own newer entry is in the primary tier
      expect(refused).toEqual({ 'higher-tier-conflict': held })
    }
    expect(await importer.cliJson(['spores', 'quarantine'])).toEqual([])
  })

  it('bad input: one clear line, non-zero exit', async () => {
    const tier = await nodes[0].cli(['spores', 'ls', '--tier', 'attic'])
    expect(tier.code).toBe(2)
    expect(tier.stderr).toMatch(/unknown tier "attic"/)
    const type = await nodes[0].cli(['spores', 'ls', '--type', 'gossip'])
    expect(type.code).toBe(2)
    expect(type.stderr).toMatch(/unknown entry type "gossip"/)
    const missing = await nodes[0].cli(['spores', 'import-seed', join(nodes[0].home, 'no-such.seed')])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/cannot read seed file/)
  })
})
