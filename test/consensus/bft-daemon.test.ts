// Primary epochs on five real sclerotium daemons with f = 1, one of them a Byzantine leader
// (`--bft-conduct bad-leader,forge-evidence`): epochs go on being certified, it is slashed on
// every honest node with evidence that checks out offline, honest members are never slashed,
// its forged evidence changes no one's trust, and an honest committee member killed in the
// middle of a round does not stop the chain. (Each voting conduct, equivocation among them, is
// run against real libp2p nodes in consensus-byzantine.test.ts.)
import { describe, it, expect, afterAll } from 'vitest'
import { Cluster, waitFor, type TestNode } from '../harness/index.ts'
import { quorumOf } from '../../consensus/index.ts'
import { decodeInvite } from '../../membership/index.ts'
import { toHex } from '../../crypto/index.ts'
import { bftArgs, startSclerotia, epochsOf, trustOf, waitForEpoch, checkEvidence } from './bft-daemon-nodes.ts'

const SIZE = 5
const F = 1
const BYZANTINE = 4

// `clusters` takes the cluster before any daemon starts, so afterAll stops every process even when the run fails.
async function byzantineRun (clusters: Cluster[], conduct: string, reason: string): Promise<{ cluster: Cluster, nodes: TestNode[], honest: TestNode[], bad: string }> {
  const cluster = new Cluster({ node: (i) => ({ startArgs: bftArgs(F, i === BYZANTINE ? conduct : undefined) }) })
  clusters.push(cluster)
  const t0 = Date.now()
  const nodes = await startSclerotia(cluster, SIZE)
  console.log(`${SIZE} daemons up in ${Date.now() - t0} ms`)
  const honest = nodes.filter((_, i) => i !== BYZANTINE)
  const bad = nodes[BYZANTINE].peerId
  await waitFor(async () => {
    for (const n of honest) {
      const t = await trustOf(n).catch(() => undefined)
      if (!(t?.peers.find(p => p.peerId === bad)?.slashes.some(s => s.reason === reason) ?? false)) return false
    }
    return true
  }, { timeoutMs: 90_000, intervalMs: 250, what: `the Byzantine member slashed (${reason}) on every honest node` })
  console.log(`slashed after ${Date.now() - t0} ms`)
  const at = Math.min(...await Promise.all(honest.map(async n => (await epochsOf(n, 1))!.latest)))
  await waitForEpoch(honest, at + 2, 60_000)

  for (const n of honest) {
    const t = await trustOf(n)
    for (const p of t.peers) if (p.peerId !== bad) expect(p.slashes, `honest ${p.peerId} slashed on ${n.name}`).toEqual([])
  }
  const witness = honest[0]
  const t = await trustOf(witness)
  const slash = t.peers.find(p => p.peerId === bad)!.slashes.find(s => s.reason === reason)!
  await checkEvidence(witness, slash.evidenceId, bad, reason)
  // every honest node holds the same certified chain, each certificate a quorum of its committee
  const views = await Promise.all(honest.map(async n => await epochsOf(n)))
  const digests = new Map<number, string>()
  for (const v of views) {
    for (const e of v!.epochs) {
      expect(digests.get(e.epoch) ?? e.digest, `epoch ${e.epoch} differs`).toBe(e.digest)
      digests.set(e.epoch, e.digest)
      if (e.epoch > 0) expect(e.signers.length).toBeGreaterThanOrEqual(quorumOf(F, e.committee.length))
      for (const s of e.signers) expect(e.committee).toContain(s)
    }
  }
  return { cluster, nodes, honest, bad }
}

describe('primary epochs on five sclerotium daemons, one of them a Byzantine leader (f = 1)', () => {
  const clusters: Cluster[] = []
  afterAll(async () => { await Promise.all(clusters.map(async c => { await c.destroy() })) })

  it('refuses and slashes a leader whose epochs break the content rules, its forged evidence changes no one\'s trust, and a member killed mid-round does not stop the chain', async () => {
    const { honest, bad } = await byzantineRun(clusters, 'bad-leader,forge-evidence', 'bad-proposal')
    // Its forged evidence (every honest proposal it saw, called bad) moved nobody: honest trust is whole everywhere.
    for (const n of honest) {
      const t = await trustOf(n)
      for (const p of t.peers) if (p.peerId !== bad) expect(p.trust, `trust of ${p.peerId} on ${n.name}`).toBe(1)
    }
    // and none of its epochs was certified: every certified epoch's candidates are the rule's, not its own name
    for (const n of honest) for (const e of (await epochsOf(n))!.epochs) expect(e.candidates).not.toEqual([bad])
    // The bad leader still votes honestly, so an honest member killed in the middle of a round
    // is the one fault a committee of four has: the next epochs are certified.
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
    await waitForEpoch(rest, victim.latest + 2, 90_000)
    const views = await Promise.all(rest.map(async n => (await epochsOf(n))!))
    const digest = views[0].epochs.find(e => e.epoch === victim.latest + 2)!.digest
    for (const v of views) expect(v.epochs.find(e => e.epoch === victim.latest + 2)?.digest).toBe(digest)
    // an invite made now carries the founder's latest certified epoch: a node joining with it
    // starts its chain there (members drop epoch 0's header after their retention)
    const { invite } = await honest[0].api<{ invite: string }>('/invites', 'POST', { ttlMs: 60_000, uses: 1 })
    const anchor = decodeInvite(invite).epochAnchor
    expect(anchor?.epoch).toBeGreaterThanOrEqual(victim.latest + 2)
    expect(toHex(anchor!.digest)).toBe((await epochsOf(honest[0]))!.epochs.find(e => e.epoch === anchor!.epoch)?.digest)
    await clusters.pop()!.destroy()
  }, 300_000)
})
