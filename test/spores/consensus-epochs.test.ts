import { describe, it, expect } from 'vitest'
import { toHex } from '../../crypto/index.ts'
import { startCluster, until, latestEpoch } from './consensus-cluster.ts'

describe('primary epochs by commit-reveal BFT', () => {
  it('four honest sclerotia certify a chain of epochs that every primary tier accepts', async () => {
    const cluster = await startCluster({ size: 4, f: 1, intervalMs: 300 })
    try {
      await until('epoch 3 everywhere', () => cluster.nodes.every(n => latestEpoch(n) >= 3))
      for (let e = 1; e <= 3; e++) {
        const digests = new Set(cluster.nodes.map(n => toHex(n.consensus.epochs.chain.get(e)!.digest)))
        expect(digests.size).toBe(1)
      }
      await until('primary tiers at epoch 3', () => cluster.nodes.every(n => (n.spores.primary.latest()?.header.epoch ?? 0) >= 3))
      const report = cluster.nodes[0].consensus.epochsReport()
      expect(report.readOnly).toBe(false)
      expect(report.epochs[0].signers.length).toBeGreaterThanOrEqual(3)
      for (const n of cluster.nodes) expect(n.consensus.trustReport().peers.flatMap(p => p.slashes)).toEqual([])
    } finally {
      await cluster.close()
    }
  })
})
