// Split brain on seven honest sclerotium daemons (committees of four, f = 1), each in its own
// network namespace: three are cut off, the four that hold the next epoch's committee certify
// it, the three turn read-only; after the heal every node holds one epoch chain, no epoch
// number has two digests anywhere, and epochs go on.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Cluster, waitFor, capabilities, titled, type TestNode } from '../harness/index.ts'
import { epochsOf, waitForEpoch, EPOCH_INTERVAL_S, type EpochsView } from './bft-daemon-nodes.ts'

const ARGS = ['--role', 'sclerotium', '--epoch-interval-s', EPOCH_INTERVAL_S, '--bft-f', '1', '--bft-committee', '4']

const { netns } = capabilities()

describe.skipIf(netns.missing !== undefined)(titled('a 4/3 partition of seven sclerotium daemons', netns), () => {
  // made when the suite runs, not when the file is collected: where namespaces cannot be
  // made the suite is skipped with the reason in its title
  let cluster: Cluster
  beforeAll(() => { cluster = new Cluster({ netns: true, node: () => ({ startArgs: ARGS }) }) })
  afterAll(async () => { await cluster?.destroy() })

  it('lets only the side holding the next committee certify, and converges on one chain after the heal', async () => {
    const nodes = await cluster.startNetwork(7)
    await cluster.waitForFullMesh(60_000)
    const t0 = Date.now()
    const step = (what: string): void => { console.log(`${what} after ${Date.now() - t0} ms`) }
    step('mesh')
    await waitForEpoch(nodes, 2, 90_000)
    step('epoch 2')

    let cut: TestNode[] = []
    let kept: TestNode[] = []
    for (let tries = 0; tries < 4; tries++) {
      const view = (await epochsOf(nodes[0]))!
      const next = new Set(view.nextCommittee)
      cut = nodes.filter(n => !next.has(n.peerId)).slice(0, 3)
      kept = nodes.filter(n => !cut.includes(n))
      for (const n of cut) cluster.lab!.cut(n.options.host!)
      // an epoch certified between the read and the cut moves the committee: try again
      const side = await epochsOf(kept[0])
      if (side !== undefined && side.nextCommittee.length > 0 && side.nextCommittee.every(p => kept.some(n => n.peerId === p))) break
      for (const n of cut) cluster.lab!.heal(n.options.host!)
      await cluster.waitForFullMesh(60_000)
    }
    step(`cut ${cut.map(n => n.name).join(',')}`)
    const cutAt = Math.max(...await Promise.all(cut.map(async n => (await epochsOf(n))!.latest)))
    const keptAt = Math.max(...await Promise.all(kept.map(async n => (await epochsOf(n))!.latest)))
    // The kept side certifies the next epoch (its committee is all there); the one after has a
    // committee drawn afresh, which may need the cut side.
    await waitForEpoch(kept, keptAt + 1, 60_000)
    await waitFor(async () => {
      for (const n of cut) if (!(await epochsOf(n))!.readOnly) return false
      return true
    }, { timeoutMs: 30_000, intervalMs: 250, what: 'the cut side read-only' })
    for (const n of cut) {
      const v = (await epochsOf(n))!
      expect(v.latest).toBeLessThanOrEqual(cutAt + 1)
      expect(v.readOnlyReason).toMatch(/quorum|uptime/)
    }
    step('kept side certified, cut side read-only')

    for (const n of cut) cluster.lab!.heal(n.options.host!)
    await cluster.waitForFullMesh(90_000)
    const target = Math.max(...await Promise.all(kept.map(async n => (await epochsOf(n))!.latest)))
    step('healed')
    await waitForEpoch(nodes, target, 60_000)
    step('converged')

    const views: EpochsView[] = await Promise.all(nodes.map(async n => (await epochsOf(n, 256))!))
    const digests = new Map<number, string>()
    for (const v of views) {
      for (const e of v.epochs) {
        expect(digests.get(e.epoch) ?? e.digest, `epoch ${e.epoch} has two digests`).toBe(e.digest)
        digests.set(e.epoch, e.digest)
      }
    }
    // no gaps: each node's chain runs without a hole from where it started up to the target
    for (const v of views) {
      const held = new Set(v.epochs.map(e => e.epoch))
      for (let e = Math.min(...held); e <= target; e++) expect(held.has(e), `epoch ${e} missing on ${v.self}`).toBe(true)
    }
    // and the healed network goes on
    await waitForEpoch(nodes, target + 1, 60_000)
    step('a new epoch after the heal')
  }, 240_000)
})
