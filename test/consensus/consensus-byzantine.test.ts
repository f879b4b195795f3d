// Seven sclerotia with f = 2, two of them Byzantine (real alternative member implementations):
// epochs are still certified, each Byzantine member whose fault its own signatures prove is
// slashed with evidence that checks out offline, withholders and copiers (whose fault nothing
// proves) are not slashed but gain nothing, and no honest member is ever slashed.
import { describe, it, expect } from 'vitest'
import { toHex } from '../../crypto/index.ts'
import { verifyEvidence, conductOf, type ConductName, type FaultReason } from '../../consensus/index.ts'
import { startCluster, until, latestEpoch, type Cluster } from './consensus-cluster.ts'

const BYZANTINE = [5, 6]

interface Scenario {
  title: string
  conducts: [ConductName, ConductName]
  /** The slash each Byzantine member gets; none for faults no signature proves. */
  reason?: FaultReason
}

const scenarios: Scenario[] = [
  { title: 'reveal a different result (dissent)', conducts: ['dissent', 'dissent'], reason: 'dissent' },
  { title: 'withhold (one commits and never reveals, one never commits)', conducts: ['withhold', 'silent'] },
  { title: 'equivocate (two signed commitments in one round)', conducts: ['equivocate', 'equivocate'], reason: 'equivocate' },
  { title: "copy another member's reveal", conducts: ['copy', 'copy'] },
  { title: 'reveal something that does not open their commitment', conducts: ['mismatch', 'mismatch'], reason: 'mismatch' }
]

function honest (cluster: Cluster): Cluster['nodes'] {
  return cluster.nodes.filter(n => !BYZANTINE.includes(n.index))
}

describe('commit-reveal BFT with two Byzantine members of seven (f = 2)', () => {
  for (const s of scenarios) {
    it(`certifies epochs ${s.reason === undefined ? 'without slashing anyone' : 'and slashes members'} when two ${s.title}`, async () => {
      const conducts = { [BYZANTINE[0]]: conductOf(s.conducts[0]), [BYZANTINE[1]]: conductOf(s.conducts[1]) }
      const cluster = await startCluster({ size: 7, f: 2, intervalMs: 300, conducts })
      try {
        const good = honest(cluster)
        const bad = BYZANTINE.map(i => cluster.ids[i])
        const reason = s.reason
        await until('two epochs on every honest node, the Byzantine members slashed where their signatures prove it', () => good.every(n =>
          latestEpoch(n) >= 2 && (reason === undefined || bad.every(b => n.consensus.engine.ledger.slashesOf(b).some(x => x.reason === reason)))), 90_000)

        for (let e = 1; e <= 2; e++) expect(new Set(good.map(n => toHex(n.consensus.epochs.chain.get(e)!.digest))).size).toBe(1)
        for (const n of good) {
          const report = n.consensus.trustReport()
          for (const peer of report.peers) {
            if (!bad.includes(peer.peerId)) expect(peer.slashes, `honest ${peer.peerId} slashed on node ${n.index}`).toEqual([])
          }
          if (reason === undefined) {
            // Nothing they signed proves a fault, and they earn (next to) nothing: a withholder's
            // vote never opens, a copier's commitment comes after the reveal it copies (only a
            // copy that overtakes that reveal on the way here could count).
            for (const b of bad) expect(n.consensus.engine.ledger.slashesOf(b)).toEqual([])
            const rounds = new Map(n.consensus.trustReport().uptime.map(u => [u.peerId, u.rounds]))
            const honestMost = Math.max(...good.filter(g => g !== n).map(g => rounds.get(g.signer.peerId) ?? 0))
            expect(honestMost).toBeGreaterThan(0)
            for (const b of bad) expect(rounds.get(b) ?? 0, `rounds credited to ${b} on node ${n.index}`).toBeLessThan(honestMost)
            continue
          }
          for (const b of bad) {
            const slash = n.consensus.engine.ledger.slashesOf(b).find(x => x.reason === reason)!
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
          // Their trust entries (one member's word each) take no one out of the candidates, and
          // their exclusion entries would leave fewer than 3f+1 = 7: the chain goes on with
          // them in the committees, as two of the f = 2 faults it tolerates.
          const start = latestEpoch(good[0])
          await until('two more epochs', () => good.every(n => latestEpoch(n) >= start + 2), 60_000)
          for (const b of bad) expect(good[0].consensus.epochs.chain.get(start + 2)!.candidates).toContain(b)
        }
      } finally {
        await cluster.close()
      }
    }, 300_000)
  }

  it('takes a proven equivocator out of the committees by a certified epoch when a candidate can spare it (f = 1, five candidates)', async () => {
    const cluster = await startCluster({ size: 5, f: 1, committeeSize: 4, intervalMs: 300, conducts: { 4: conductOf('equivocate') } })
    try {
      const bad = cluster.ids[4]
      const good = cluster.nodes.filter(n => n.index !== 4)
      await until('a certified epoch that holds an exclusion of the equivocator and leaves it out of the candidates', () => good.every(n => {
        const latest = n.consensus.epochs.chain.latest()
        return latest !== undefined && !latest.candidates.includes(bad) && n.spores.tiers.primary.get('exclusion', bad) !== undefined
      }), 90_000)
      const start = latestEpoch(good[0])
      // the chain goes on with four honest candidates, and no honest member was slashed
      await until('two more epochs', () => good.every(n => latestEpoch(n) >= start + 2), 60_000)
      for (const n of good) {
        for (const peer of n.consensus.trustReport().peers) if (peer.peerId !== bad) expect(peer.slashes).toEqual([])
        expect(n.consensus.epochs.chain.latest()!.candidates).toEqual(cluster.ids.filter(id => id !== bad).sort())
      }
    } finally {
      await cluster.close()
    }
  }, 150_000)
})
