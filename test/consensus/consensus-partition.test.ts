// Split-brain: seven sclerotia (committees of four, f = 1) cut 4/3 by a connection gater.
// Only the side that reaches a quorum of the next epoch's committee and has more differential
// uptime certifies it; the other turns read-only. (A committee is fixed per epoch, so the next
// epoch after that certifies only if its committee too has a quorum on the 4-side.) After the heal every node holds the same chain,
// adopted with every certificate checked, and no epoch number has two digests anywhere.
import { describe, it, expect } from 'vitest'
import { toHex } from '../../crypto/index.ts'
import { EPOCH_OPERATION, epochKey } from '../../consensus/index.ts'
import { startCluster, until, latestEpoch, type ClusterNode } from './consensus-cluster.ts'

function subsets<T> (items: T[], k: number): T[][] {
  if (k === 0) return [[]]
  if (items.length < k) return []
  const [first, ...rest] = items
  return [...subsets(rest, k - 1).map(s => [first, ...s]), ...subsets(rest, k)]
}

describe('partition 4/3 and heal', () => {
  it('lets one side certify, keeps the other read-only, and converges on one chain', async () => {
    const cluster = await startCluster({ size: 7, f: 1, committeeSize: 4, intervalMs: 800, maxAttempts: 2 })
    try {
      await until('epoch 2 everywhere', () => cluster.nodes.every(n => latestEpoch(n) >= 2), 30_000)
      let a: ClusterNode[] = []
      let b: ClusterNode[] = []
      for (let tries = 0; tries < 3; tries++) {
        const n0 = cluster.nodes[0]
        const last = new Set(n0.consensus.epochs.lastCommittee())
        const next = n0.consensus.engine.committeeOf(EPOCH_OPERATION, epochKey(latestEpoch(n0) + 1))!
        // The 4-side holds 3 of the next epoch's committee, and its first proposer if it can.
        const score = (s: ClusterNode[]): number => s.filter(n => next.includes(n.signer.peerId)).length * 2 + (s.some(n => n.signer.peerId === next[0]) ? 1 : 0)
        a = subsets(cluster.nodes, 4).filter(s => s.filter(n => last.has(n.signer.peerId)).length >= 3).sort((x, y) => score(y) - score(x))[0]
        b = cluster.nodes.filter(n => !a.includes(n))
        await cluster.partition(a, b)
        if (a[0].consensus.epochs.writability().writable) break
        await cluster.heal()
        await until('chains level again', () => new Set(cluster.nodes.map(latestEpoch)).size === 1, 20_000)
      }
      // A certificate made just before the cut may still reach the 3-side; read its level once
      // it has turned read-only, when nothing more can come in.
      await until('the 3-side turns read-only and level', () => b.every(n => n.consensus.epochsReport().readOnly) && new Set(b.map(latestEpoch)).size === 1, 30_000)
      const cutA = Math.max(...a.map(latestEpoch))
      const cutB = Math.max(...b.map(latestEpoch))
      await until('the 4-side certifies the next epoch', () => a.every(n => latestEpoch(n) >= cutA + 1), 60_000)
      for (const n of b) {
        expect(latestEpoch(n)).toBe(cutB)
        expect(n.consensus.epochsReport().readOnly).toBe(true)
        expect(n.consensus.metrics().readOnly).toBe(true)
        // Reads go on: the primary tier still serves its last epoch.
        expect(n.spores.primary.latest()?.header.epoch).toBe(cutB)
      }
      // (The 4-side may turn read-only itself now: the committee of the epoch after the one it
      // certified is drawn afresh and may need the other side.)

      await cluster.heal()
      const target = Math.max(...a.map(latestEpoch))
      await until('the read-only side adopts the chain', () => cluster.nodes.every(n => latestEpoch(n) >= target), 30_000)
      await until('primary tiers follow', () => cluster.nodes.every(n => (n.spores.primary.latest()?.header.epoch ?? 0) >= target), 30_000)
      for (let e = 1; e <= target; e++) {
        const digests = new Set(cluster.nodes.map(n => n.consensus.epochs.chain.get(e)).filter(r => r !== undefined).map(r => toHex(r!.digest)))
        expect(digests.size, `epoch ${e}`).toBe(1)
      }
      const primaryDigests = new Set(cluster.nodes.map(n => n.spores.primary.latest()!.header.epoch === target ? toHex(n.spores.primary.latest()!.digest) : `ahead-${n.index}`))
      expect([...primaryDigests].filter(d => !d.startsWith('ahead')).length).toBeLessThanOrEqual(1)
      for (const n of cluster.nodes) expect(n.consensus.epochs.conflictsRefused()).toBe(0)
      await until('writable again everywhere', async () => {
        if (cluster.nodes.every(n => !n.consensus.epochs.isReadOnly())) return true
        await cluster.reconnect()
        return false
      }, 15_000).catch(() => undefined)
      expect(cluster.nodes.map(n => { const w = n.consensus.epochs.writability(); return w.writable ? 'writable' : `${n.index}: ${w.reason} reach=${w.reachable} up=${w.uptimeReachable.toFixed(1)} down=${w.uptimeUnreachable.toFixed(1)} conns=${n.libp2p.getConnections().length}` })).toEqual(cluster.nodes.map(() => 'writable'))
      // And the healed network goes on certifying.
      await until('a new epoch after the heal', () => cluster.nodes.every(n => latestEpoch(n) > target), 60_000)
    } finally {
      await cluster.close()
    }
  }, 240_000)
})
