// Primary epochs on seven real sclerotium daemons with f = 2 and two Byzantine members each
// run (`--bft-conduct`): epochs are certified, each Byzantine member is slashed on every honest
// node with evidence that checks out offline, honest members never are. The first run also
// kills a committee member in the middle of a round.
import { describe, it, expect, afterAll } from 'vitest'
import { Cluster, waitFor } from '../harness/index.ts'
import { quorumOf, effectiveF } from '../../consensus/index.ts'
import { bftArgs, startSclerotia, epochsOf, trustOf, waitForEpoch, checkEvidence } from './bft-daemon-nodes.ts'

const BYZANTINE = [5, 6]

// `clusters` takes the cluster before any daemon starts, so afterAll stops every process even when the run fails.
async function byzantineRun (clusters: Cluster[], conducts: [string, string], reasons: [string, string]): Promise<Cluster> {
  const cluster = new Cluster({ node: (i) => ({ startArgs: bftArgs(i === BYZANTINE[0] ? conducts[0] : i === BYZANTINE[1] ? conducts[1] : undefined) }) })
  clusters.push(cluster)
  const t0 = Date.now()
  const nodes = await startSclerotia(cluster)
  console.log(`seven daemons up in ${Date.now() - t0} ms`)
  const honest = nodes.filter((_, i) => !BYZANTINE.includes(i))
  const bad = BYZANTINE.map(i => nodes[i].peerId)
  await waitFor(async () => {
    for (const n of honest) {
      const t = await trustOf(n).catch(() => undefined)
      if (t === undefined) return false
      for (let k = 0; k < 2; k++) if (!(t.peers.find(p => p.peerId === bad[k])?.slashes.some(s => s.reason === reasons[k]) ?? false)) return false
    }
    return true
  }, { timeoutMs: 90_000, intervalMs: 1500, what: `both Byzantine members slashed (${reasons.join(', ')}) on every honest node` })
  console.log(`slashed after ${Date.now() - t0} ms`)
  await waitForEpoch(honest, 2, 60_000)

  for (const n of honest) {
    const t = await trustOf(n)
    for (const p of t.peers) if (!bad.includes(p.peerId)) expect(p.slashes, `honest ${p.peerId} slashed on ${n.name}`).toEqual([])
  }
  const witness = honest[0]
  const t = await trustOf(witness)
  for (let k = 0; k < 2; k++) {
    const slash = t.peers.find(p => p.peerId === bad[k])!.slashes.find(s => s.reason === reasons[k])!
    await checkEvidence(witness, slash.evidenceId, bad[k], reasons[k])
    expect(t.peers.find(p => p.peerId === bad[k])!.trust).toBeLessThan(1)
  }
  // the slashes reach the spores as trust entries signed by committee members (latent, then primary once an epoch takes them)
  await waitFor(async () => {
    const entries = [
      ...await witness.api<Array<{ key: string, value: { score: number, reason: string } }>>('/spores?type=trust'),
      ...await witness.api<Array<{ key: string, value: { score: number, reason: string } }>>('/spores?tier=primary&type=trust')
    ]
    return bad.every(b => entries.some(e => e.key === b && e.value.score < 1 && /slashed for/.test(e.value.reason)))
  }, { timeoutMs: 20_000, intervalMs: 1000, what: 'trust entries of the slashed members' })
  // every honest node holds the same certified chain
  const views = await Promise.all(honest.map(async n => await epochsOf(n)))
  const digests = new Map<number, string>()
  for (const v of views) {
    for (const e of v!.epochs) {
      expect(digests.get(e.epoch) ?? e.digest, `epoch ${e.epoch} differs`).toBe(e.digest)
      digests.set(e.epoch, e.digest)
      // a certificate holds a quorum of its committee (f shrinks with a committee shorter than 3f+1)
      if (e.epoch > 0) expect(e.signers.length).toBeGreaterThanOrEqual(quorumOf(effectiveF(2, e.committee.length), e.committee.length))
      for (const s of e.signers) expect(e.committee).toContain(s)
    }
  }
  return cluster
}

describe('primary epochs on seven sclerotium daemons, two of them Byzantine (f = 2)', () => {
  const clusters: Cluster[] = []
  afterAll(async () => { await Promise.all(clusters.map(async c => { await c.destroy() })) })

  it('certifies epochs and slashes a dissenter and an equivocator; a committee member killed mid-round does not stop the next epochs', async () => {
    const cluster = await byzantineRun(clusters, ['dissent', 'equivocate'], ['dissent', 'equivocate'])
    const honest = cluster.nodes.filter((_, i) => !BYZANTINE.includes(i))
    // The crash must stay inside the fault model (at most f faulty of the committee): it comes
    // once every honest node has excluded the equivocator, so the dissenter and the crashed
    // member are the only faults left.
    const equivocator = cluster.nodes[BYZANTINE[1]].peerId
    await waitFor(async () => {
      for (const n of honest) if (!(await trustOf(n)).excluded.includes(equivocator)) return false
      return true
    }, { timeoutMs: 60_000, intervalMs: 500, what: 'the equivocator excluded on every honest node' })
    // kill an honest committee member in the middle of a round: after commitments went out,
    // before the round is certified
    const victim = await waitFor(async () => {
      for (const n of honest.slice(1)) {
        const view = await epochsOf(n)
        const round = view?.rounds.find(r => r.committee.includes(n.peerId) && r.commits > 0 && !r.certified && !r.failed)
        if (round !== undefined) return { node: n, latest: view!.latest }
      }
      return undefined
    }, { timeoutMs: 30_000, intervalMs: 50, what: 'an honest committee member in the middle of a round' })
    await victim.node.kill()
    const rest = honest.filter(n => n !== victim.node)
    await waitForEpoch(rest, victim.latest + 2, 60_000)
    const views = await Promise.all(rest.map(async n => (await epochsOf(n))!))
    const digest = views[0].epochs.find(e => e.epoch === victim.latest + 2)!.digest
    for (const v of views) expect(v.epochs.find(e => e.epoch === victim.latest + 2)?.digest).toBe(digest)
    // seven daemons less for the next run on a small machine
    await clusters.pop()!.destroy()
  }, 240_000)

  it('slashes a withholder and a copier', async () => {
    await byzantineRun(clusters, ['withhold', 'copy'], ['withhold', 'copy'])
    await clusters.pop()!.destroy()
  }, 200_000)
})
