// Light sync on real libp2p nodes (consensus/header-sync.ts): members hold only the newest 8
// epochs in memory here, so a member stopped while more were certified cannot be served those
// epochs; it fetches the certified headers from the others' archives, checks every link, takes
// the newest epoch whole and ends with the same primary spore. A responder that forges a header
// or leaves one out is refused and an honest one used; a member further behind than members keep
// headers adopts nothing and says why.
import { describe, it, expect, afterEach } from 'vitest'
import { encodeCanonical, decodeCanonical, toHex } from '../../crypto/index.ts'
import { startCluster, until, latestEpoch, type Cluster, type ClusterNode } from './consensus-cluster.ts'

const RECENT = 8

let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

const tierEpoch = (n: ClusterNode): number => n.spores.primary.latest()?.header.epoch ?? -1

/** Stops `lag`'s BFT process until the others certified `epochs` more, then starts it again. */
async function stopWhile (c: Cluster, lag: ClusterNode, epochs: number): Promise<{ from: number, target: number }> {
  await until('epoch 2', () => c.nodes.every(n => latestEpoch(n) >= 2), 60_000)
  await c.stopMember(lag)
  const from = latestEpoch(lag)
  const others = c.nodes.filter(n => n !== lag)
  await until(`${epochs} epochs without the stopped member`, () => others.every(n => latestEpoch(n) >= from + epochs), 90_000)
  const target = Math.min(...others.map(latestEpoch))
  await c.reconnect()
  await c.startMember(lag)
  return { from, target }
}

async function caughtUp (lag: ClusterNode, target: number): Promise<void> {
  await until('the member caught up', () => latestEpoch(lag) >= target && tierEpoch(lag) >= target, 60_000).catch((err: Error) => {
    throw new Error(`${err.message}: at epoch ${latestEpoch(lag)} (tier ${tierEpoch(lag)}) of ${target}, ${JSON.stringify(lag.consensus.epochs.catchUpStats())}`)
  })
}

/** The lagging member's kept headers of epochs from+1..upTo are the others', and so is its primary spore. */
async function expectSameChain (c: Cluster, lag: ClusterNode, from: number, upTo: number): Promise<void> {
  const honest = c.nodes.find(n => n !== lag) as ClusterNode
  const digests = async (n: ClusterNode): Promise<string[]> => {
    const out: string[] = []
    for (let e = from + 1; e <= upTo; e++) out.push(toHex((await n.spores.primary.headers.get(e))?.digest ?? new Uint8Array(0)))
    return out
  }
  const mine = await digests(lag)
  expect(mine.every(d => d.length === 64)).toBe(true)
  expect(mine).toEqual(await digests(honest))
  const held = lag.spores.primary.latest()
  expect(toHex(held!.digest)).toBe(toHex((await honest.spores.primary.headers.get(held!.header.epoch))!.digest))
  // the same entries as the others at one epoch (the cluster goes on certifying: compared once both hold the same)
  const entries = async (n: ClusterNode): Promise<string[]> => (await n.spores.ls({ tier: 'primary' })).map(e => `${e.type}/${e.key}/${e.seq}`).sort()
  let same = false
  await until('the same primary tier at one epoch', async () => {
    const epoch = tierEpoch(lag)
    const [a, b] = [await entries(lag), await entries(honest)]
    same = epoch === tierEpoch(lag) && epoch === tierEpoch(honest) && JSON.stringify(a) === JSON.stringify(b)
    return same
  }, 30_000)
  expect(same).toBe(true)
}

/** A header page's pairs rewritten (a lying responder); other answers go through unchanged. */
function tamperHeaders (response: Uint8Array, change: (pairs: Array<[Uint8Array, Uint8Array]>) => Array<[Uint8Array, Uint8Array]>): Uint8Array {
  const page = decodeCanonical(response) as { headers: Array<[Uint8Array, Uint8Array]>, held: number, oldest: number }
  return encodeCanonical({ ...page, headers: change(page.headers) })
}

const asksHeaders = (request: Uint8Array): boolean => 'headers' in (decodeCanonical(request) as object)

describe('light sync of a member behind further than members keep epochs', () => {
  it('a member stopped while more epochs than members keep were certified checks the headers, takes the newest epoch whole, and ends with the same primary spore', async () => {
    cluster = await startCluster({ size: 5, f: 1, committeeSize: 4, intervalMs: 300, recentEpochs: RECENT })
    const lag = cluster.nodes[4]
    const { from, target } = await stopWhile(cluster, lag, 2 * RECENT)
    await caughtUp(lag, target)
    const stats = lag.consensus.epochs.catchUpStats()
    const kept = await lag.spores.primary.headers.range(from + 1, target, 1024)
    const perEpoch = kept.reduce((sum, [h, c]) => sum + h.length + c.length, 0) / kept.length
    console.log(`light sync from epoch ${from} to ${target}: ${JSON.stringify(stats)}; a kept header with its certificate: ${Math.round(perEpoch)} bytes (committee of 4)`)
    expect(target - from).toBeGreaterThan(RECENT)
    // the epochs it lacked were no longer held whole by anyone: they came as checked headers
    expect(stats.headerPages).toBeGreaterThanOrEqual(1)
    expect(stats.headersAdopted).toBeGreaterThanOrEqual(target - from - RECENT)
    expect(stats.refusedResponders).toBe(0)
    expect(stats.stranded).toBeUndefined()
    expect(lag.consensus.epochs.conflictsRefused()).toBe(0)
    await expectSameChain(cluster, lag, from, target)
    // and it takes part again: it holds the epochs certified after it caught up
    const now = Math.max(...cluster.nodes.map(latestEpoch))
    await until('two more epochs on the member', () => latestEpoch(lag) >= now + 2, 30_000)
  }, 120_000)

  it('refuses a responder that forges a header and one that leaves a header out, and syncs from an honest one', async () => {
    cluster = await startCluster({ size: 5, f: 1, committeeSize: 4, intervalMs: 300, recentEpochs: RECENT })
    const [lag, forger, truncator] = cluster.nodes
    // a header whose issue time moved by 1 ms: its digest is no longer what the certificate certifies
    forger.answerCatchUp = async (request) => {
      const answer = await forger.consensus.epochs.serve(request)
      if (!asksHeaders(request)) return answer
      return tamperHeaders(answer, pairs => pairs.map(([h, c], i) => {
        if (i !== 1) return [h, c]
        const header = decodeCanonical(h) as Record<string, unknown>
        return [encodeCanonical({ ...header, issuedAt: (header.issuedAt as number) + 1 }), c]
      }))
    }
    // a page with a gap: the second header left out
    truncator.answerCatchUp = async (request) => {
      const answer = await truncator.consensus.epochs.serve(request)
      return asksHeaders(request) ? tamperHeaders(answer, pairs => pairs.filter((_, i) => i !== 1)) : answer
    }
    // both liars are asked before any honest member (preferred ones first, in random order)
    lag.catchUpPreferred = () => [forger.signer.peerId, truncator.signer.peerId]
    const { from, target } = await stopWhile(cluster, lag, 2 * RECENT)
    await caughtUp(lag, target)
    const stats = lag.consensus.epochs.catchUpStats()
    console.log(`light sync from epoch ${from} to ${target} past two liars: ${JSON.stringify(stats)}`)
    expect(stats.refusedResponders).toBe(2)
    expect(stats.lastRefusal).toMatch(/certif|was due/)
    expect(lag.consensus.epochs.conflictsRefused()).toBe(0)
    await expectSameChain(cluster, lag, from, target)
  }, 120_000)

  it('a member behind further than members keep headers adopts nothing and says why', async () => {
    cluster = await startCluster({ size: 5, f: 1, committeeSize: 4, intervalMs: 300, recentEpochs: RECENT, headerRetention: 10 })
    const lag = cluster.nodes[4]
    const { from } = await stopWhile(cluster, lag, 14)
    const tier = tierEpoch(lag)
    await until('the member says it cannot catch up', () => lag.consensus.epochs.catchUpStats().stranded !== undefined, 30_000)
    // heads keep coming for a few more seconds: still nothing adopted
    await new Promise(resolve => setTimeout(resolve, 2000))
    const stats = lag.consensus.epochs.catchUpStats()
    console.log(`stranded at epoch ${from}: ${JSON.stringify(stats)}`)
    expect(latestEpoch(lag)).toBe(from)
    expect(tierEpoch(lag)).toBe(tier)
    expect(stats.adopted + stats.headersAdopted).toBe(0)
    expect(stats.refusedResponders).toBe(0)
    const report = lag.consensus.epochsReport()
    expect(report.readOnly).toBe(true)
    expect(report.readOnlyReason).toMatch(new RegExp(`cannot catch up: this node holds epoch ${from}, and members keep certified headers only from epoch \\d+ on .*a retention of 10 epochs`))
  }, 120_000)
})
