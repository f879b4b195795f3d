// A node's own summary entries travel when they changed in a way readers act on, or at the
// refresh; re-sent unchanged every minute, they made every node's idle traffic grow with N.
import { describe, it, expect, afterEach } from 'vitest'
import { SelfPublisher, type SelfSummary, type SignedEntry } from '../../spores/index.ts'
import { openTestSpores, networkRoot, tempDir, nodeValue, identity } from './fixtures.ts'
import type { Spores } from '../../spores/index.ts'

describe('own entries: on change, else at the refresh', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c() })

  async function publisher (summary: () => SelfSummary, clock: () => number, lifetimeMs?: number): Promise<{ p: SelfPublisher, sent: SignedEntry[], spores: Spores }> {
    const dir = await tempDir('self-publisher-')
    const signer = identity()
    const spores = await openTestSpores(dir.path, networkRoot(), signer, { clock })
    cleanups.push(async () => { await spores.close(); await dir.remove() })
    const sent: SignedEntry[] = []
    const p = new SelfPublisher({ signer, summary, merger: spores.merger, latent: spores.tiers.latent, publish: async (e) => { sent.push(e) }, intervalMs: 60_000, clock, log: spores.log, ...(lifetimeMs === undefined ? {} : { nodeLifetimeMs: lifetimeMs }) })
    return { p, sent, spores }
  }

  it('sends nothing when nothing changed, a material change at once, and everything again at the refresh', async () => {
    let now = 1_000_000
    const state: SelfSummary = { node: nodeValue(1), health: { status: 'ok', load: 0.4, memFreeMiB: 1500, diskFreeGiB: 40 }, uptime: { since: 999_000, uptimeS: 1 } }
    const { p, sent, spores } = await publisher(() => ({ ...state, uptime: { since: state.uptime.since, uptimeS: Math.floor((now - state.uptime.since) / 1000) } }), () => now)
    expect(p.refreshMs).toBe(600_000)
    const types = (from: number): string[] => sent.slice(from).map(e => e.type).sort()

    expect(types(0)).toEqual([])
    await p.publishDue()
    expect(types(0)).toEqual(['health', 'node', 'uptime'])

    // nine idle minutes: the uptime counter and the load's noise move, nothing travels
    let mark = sent.length
    for (let minute = 1; minute <= 9; minute++) {
      now += 60_000
      state.health = { ...state.health, load: 0.4 + minute / 100, memFreeMiB: 1500 + minute * 10 }
      await p.publishDue()
    }
    expect(types(mark)).toEqual([])

    // what readers act on goes out alone, at the next reading
    mark = sent.length
    now += 1_000
    state.health = { ...state.health, status: 'degraded' }
    await p.publishDue()
    expect(types(mark)).toEqual(['health'])
    mark = sent.length
    now += 1_000
    state.node = { ...state.node, addrs: ['/ip4/10.0.0.2/tcp/4001'] }
    await p.publishDue()
    expect(types(mark)).toEqual(['node'])

    // each entry goes out again 10 minutes after it last did, the node entry with a fresh expiry
    const lastAt = (type: string): number => (sent.filter(e => e.type === type).at(-1) as SignedEntry).issuedAt
    for (const type of ['uptime', 'health', 'node']) {
      mark = sent.length
      now = lastAt(type) + 600_000 - 1
      await p.publishDue()
      expect(types(mark)).not.toContain(type)
      now += 1
      await p.publishDue()
      expect(types(mark)).toContain(type)
    }
    const node = sent.filter(e => e.type === 'node').at(-1) as SignedEntry
    expect(node.expiresAt).toBe(node.issuedAt + 24 * 3600_000)
    // the latest of each is what the node's own store holds
    expect((await spores.ls({ type: 'uptime' }))[0].issuedAt).toBe(lastAt('uptime'))
  })

  it('refreshes a short-lived node entry well within its lifetime, and publishNow sends everything', async () => {
    let now = 5_000_000
    const { p, sent } = await publisher(() => ({ node: nodeValue(2), health: { status: 'ok', load: 0.1, memFreeMiB: 900 }, uptime: { since: 1, uptimeS: 5 } }), () => now, 600_000)
    expect(p.refreshMs).toBe(150_000)
    await p.publishDue()
    now += 149_000
    const mark = sent.length
    await p.publishDue()
    expect(sent.length).toBe(mark)
    now += 1_000
    await p.publishDue()
    expect(sent.slice(mark).map(e => e.type).sort()).toEqual(['health', 'node', 'uptime'])
    const again = sent.length
    now += 1
    await p.publishNow()
    expect(sent.slice(again).map(e => e.type).sort()).toEqual(['health', 'node', 'uptime'])
  })
})
