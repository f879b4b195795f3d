// Seven sclerotia with f = 2, two of them Byzantine (real alternative member implementations):
// epochs are still certified, each Byzantine member is slashed with evidence that checks out
// offline, and no honest member is ever slashed.
import { describe, it, expect } from 'vitest'
import { toHex } from '../../crypto/index.ts'
import { verifyEvidence, conductOf, type ConductName, type FaultReason } from '../../consensus/index.ts'
import { startCluster, until, latestEpoch, judgedThrough, type Cluster } from './consensus-cluster.ts'

const BYZANTINE = [5, 6]

interface Scenario {
  title: string
  conducts: [ConductName, ConductName]
  reason: FaultReason
}

const scenarios: Scenario[] = [
  { title: 'reveal a different result (dissent)', conducts: ['dissent', 'dissent'], reason: 'dissent' },
  { title: 'withhold (one commits and never reveals, one never commits)', conducts: ['withhold', 'silent'], reason: 'withhold' },
  { title: 'equivocate (two signed commitments in one round)', conducts: ['equivocate', 'equivocate'], reason: 'equivocate' },
  { title: "copy another member's reveal", conducts: ['copy', 'copy'], reason: 'copy' },
  { title: 'reveal something that does not open their commitment', conducts: ['mismatch', 'mismatch'], reason: 'mismatch' }
]

function honest (cluster: Cluster): Cluster['nodes'] {
  return cluster.nodes.filter(n => !BYZANTINE.includes(n.index))
}

describe('commit-reveal BFT with two Byzantine members of seven (f = 2)', () => {
  for (const s of scenarios) {
    it(`certifies epochs and slashes members that ${s.title}`, async () => {
      const conducts = { [BYZANTINE[0]]: conductOf(s.conducts[0]), [BYZANTINE[1]]: conductOf(s.conducts[1]) }
      const cluster = await startCluster({ size: 7, f: 2, intervalMs: 300, conducts })
      try {
        const good = honest(cluster)
        const bad = BYZANTINE.map(i => cluster.ids[i])
        await until('both Byzantine members slashed on every honest node, two epochs', () => good.every(n =>
          latestEpoch(n) >= 2 && bad.every(b => n.consensus.engine.ledger.slashesOf(b).some(x => x.reason === s.reason))), 90_000)
        // "No honest member slashed" is read only once withholding in those rounds has been judged.
        await until('rounds of epochs 1-2 judged on every honest node', () => good.every(n => judgedThrough(n, 2)))

        for (let e = 1; e <= 2; e++) expect(new Set(good.map(n => toHex(n.consensus.epochs.chain.get(e)!.digest))).size).toBe(1)
        for (const n of good) {
          const report = n.consensus.trustReport()
          for (const peer of report.peers) {
            if (!bad.includes(peer.peerId)) expect(peer.slashes, `honest ${peer.peerId} slashed on node ${n.index}`).toEqual([])
          }
          for (const b of bad) {
            const slash = n.consensus.engine.ledger.slashesOf(b).find(x => x.reason === s.reason)!
            // The evidence is self-contained: decoded and checked with nothing but its bytes.
            const evidence = verifyEvidence(n.consensus.engine.evidence(slash.evidenceId)!)
            expect(evidence.id).toBe(slash.evidenceId)
            expect(evidence.reason).toBe(s.reason)
            expect(evidence.accused).toBe(b)
            expect(n.consensus.engine.ledger.trust(b)).toBeLessThan(1)
          }
        }
        if (s.reason === 'equivocate') {
          for (const n of good) expect(n.consensus.trustReport().excluded.sort()).toEqual([...bad].sort())
          // Excluded at once: the next epochs draw committees from the five others only.
          const start = latestEpoch(good[0])
          await until('two more epochs without the equivocators', () => good.every(n => latestEpoch(n) >= start + 2))
          const later = good[0].consensus.epochs.chain.get(start + 2)!
          for (const b of bad) {
            expect(later.candidates).not.toContain(b)
            expect(later.committee).not.toContain(b)
          }
        }
      } finally {
        await cluster.close()
      }
    }, 300_000)
  }
})
