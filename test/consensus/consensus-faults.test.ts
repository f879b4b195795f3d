// A committee member that stops in the middle of a round: the round completes (or a later
// attempt does) and the next epochs are certified; the crashed member is not slashed (nothing
// it signed proves a fault: absence never does); the committee agrees that it is down.
import { describe, it, expect } from 'vitest'
import { toHex } from '../../crypto/index.ts'
import { EPOCH_OPERATION, epochKey, type MemberConduct, type ConductActions } from '../../consensus/index.ts'
import { startCluster, until, latestEpoch } from './consensus-cluster.ts'

describe('a committee member stopped mid-round', () => {
  it('does not stop the chain, is not slashed, and is agreed to be down', async () => {
    const cluster = await startCluster({ size: 7, f: 2, intervalMs: 400 })
    try {
      await until('epoch 1', () => cluster.nodes.every(n => latestEpoch(n) >= 1))
      const n0 = cluster.nodes[0]
      const next = latestEpoch(n0) + 1
      const committee = n0.consensus.engine.committeeOf(EPOCH_OPERATION, epochKey(next))!
      const victim = cluster.nodes[cluster.ids.indexOf(committee[1])]
      let stoppedIn = -1
      // A real member that commits, then its whole node goes away before revealing.
      victim.conduct.make = (): MemberConduct => ({
        name: 'crash-after-commit',
        evaluated (result: Uint8Array, act: ConductActions) {
          act.commit({ result, nonce: crypto.getRandomValues(new Uint8Array(32)) })
          stoppedIn = latestEpoch(victim) + 1
          void cluster.stopNode(victim)
        },
        revealPhase () {}
      })
      await until('the victim stopped mid-round', () => victim.stopped)
      const live = cluster.live()
      await until('two more epochs on the live nodes', () => live.every(n => latestEpoch(n) >= stoppedIn + 1), 90_000)
      for (let e = 1; e <= stoppedIn + 1; e++) expect(new Set(live.map(n => toHex(n.consensus.epochs.chain.get(e)!.digest))).size).toBe(1)
      await until('primary tiers follow', () => live.every(n => (n.spores.primary.latest()?.header.epoch ?? 0) >= stoppedIn + 1))
      for (const n of live) {
        expect(n.consensus.trustReport().peers.filter(p => p.slashes.length > 0).map(p => `${cluster.ids.indexOf(p.peerId)}:${p.slashes.map(x => x.reason).join(',')}`), `slashes seen by node ${n.index} (victim ${victim.index})`).toEqual([])
        expect(n.consensus.epochs.conflictsRefused()).toBe(0)
      }
      // "Node X is down": each member asks its own probe; the committee certifies the verdict.
      expect(await live[0].consensus.isNodeDown(victim.signer.peerId)).toBe(true)
      expect(await live[1].consensus.isNodeDown(live[2].signer.peerId)).toBe(false)
    } finally {
      await cluster.close()
    }
  }, 300_000)
})
