// Migration of a real guest (the page writer, on every engine this machine has: the interpreter
// always, KVM where /dev/kvm opens) between two real libp2p nodes on 127.0.0.1. What must hold:
// a guest dirtying whole pages as fast as it can still migrates (the throttle rises until the
// rounds shrink), and the guest runs at exactly one place afterwards, also when the handover
// times out (it runs on at the source, replicated, and a retry then succeeds).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Libp2p } from 'libp2p'
import {
  MigrationFailedError, PrimaryReplication, ReplicaHost, allocateGuestMemory, availableEngines, guestRestorer, startGuest, verifyGuestMemory
} from '../../ram-replication/index.ts'
import type { GuestEngine, MigrationProgress, PageWriterParams, RunningGuest } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from './mesh.ts'

const PREFIX = '/mycelium/migration-test'
const MEMORY = 8 * 1024 * 1024

describe.each(availableEngines())('migration on the %s engine', (engine: GuestEngine) => {
  let primary: Libp2p
  let backup: Libp2p
  let host: ReplicaHost
  // A backup that cannot start guests (no restorer): it takes the handover epoch but never resumes.
  let keeper: Libp2p
  let keeperHost: ReplicaHost
  const started: RunningGuest[] = []
  const resumed: Array<{ vmId: string, guest: RunningGuest }> = []

  beforeAll(async () => {
    primary = await startReplicationNode()
    backup = await startReplicationNode()
    await connect(primary, [backup])
    const restore = guestRestorer(engine)
    host = new ReplicaHost(backup, {
      protocolPrefix: PREFIX,
      secretKey: secretKeyOf(backup),
      allocateMemory: allocateGuestMemory,
      restoreGuest: restore
    })
    host.on('resumed', (vmId, guest) => { resumed.push({ vmId, guest: guest as RunningGuest }) })
    await host.start()
    keeper = await startReplicationNode()
    await connect(primary, [keeper])
    keeperHost = new ReplicaHost(keeper, { protocolPrefix: PREFIX, secretKey: secretKeyOf(keeper) })
    await keeperHost.start()
  })

  afterAll(async () => {
    for (const guest of [...started, ...resumed.map(entry => entry.guest)]) await guest.stop().catch(() => {})
    await host?.stop()
    await keeperHost?.stop()
    await stopAll([primary, backup, keeper])
  })

  async function replicated (workload: Partial<PageWriterParams>, to: Libp2p = backup): Promise<{ guest: RunningGuest, replication: PrimaryReplication }> {
    const guest = await startGuest(engine, { memoryBytes: MEMORY, workload })
    started.push(guest)
    const replication = new PrimaryReplication({
      node: primary,
      protocolPrefix: PREFIX,
      guest,
      secretKey: secretKeyOf(primary),
      // Two direct links, so a failed one does not stop the other.
      backups: [{ peerId: to.peerId.toString(), via: [undefined, undefined] }],
      epochIntervalMs: 10
    })
    await replication.start()
    await replication.initialSync()
    return { guest, replication }
  }

  /** The guest runs at the target (resumed there, counter moving on) and no longer here. */
  async function runsOnlyAtTarget (source: RunningGuest, vmId: string, counter: number): Promise<void> {
    expect(source.state).toBe('stopped')
    const moved = resumed.filter(entry => entry.vmId === vmId)
    expect(moved).toHaveLength(1)
    const target = moved[0].guest
    await target.waitForCounter(counter + 50, { signal: AbortSignal.timeout(20_000) })
    await target.pause()
    expect(verifyGuestMemory(target.memory()).ok).toBe(true)
    await target.stop()
    host.drop(vmId)
  }

  it('migrates a guest writing whole pages at its full speed: the throttle rises until the rounds shrink', async () => {
    const { guest, replication } = await replicated({ pattern: 'full', dirtyRate: 0 })
    // Let it run flat out for a while, to know its speed.
    const before = guest.guestCounter()
    await new Promise(resolve => setTimeout(resolve, 500))
    const pagesPerS = (guest.guestCounter() - before) / 0.5
    const progress: MigrationProgress[] = []
    // Two whole pages: what a full-speed guest dirties in a fraction of one round, on any engine.
    const report = await replication.migrate(backup.peerId.toString(), {
      convergeBytes: 2 * 4096 + 2048,
      onProgress: (step) => { progress.push(step) }
    })
    console.log(`${engine}: full pattern at ${pagesPerS.toFixed(0)} pages/s migrated in ${report.rounds} rounds, ${report.totalMs.toFixed(0)} ms, ${(report.bytes / 1e6).toFixed(1)} MB, throttle ${Math.round(report.throttle * 100)}%, downtime ${report.downtimeMs.toFixed(1)} ms`)
    expect(pagesPerS).toBeGreaterThan(100)
    expect(report.late).toBe(false)
    expect(report.finalBytes).toBeLessThan(64 * 4096)
    expect(progress.at(-1)?.phase).toBe('done')
    // The throttle rose only after rounds that did not shrink. It nearly always takes the throttle
    // to get there; but a round that began just after an epoch (the machine busy) may already be
    // small enough, and then none is applied.
    const bigRounds = progress.filter(step => step.phase === 'converge' && step.bytes > 2 * 4096 + 2048).length
    if (report.throttle > 0) expect(bigRounds).toBeGreaterThanOrEqual(2)
    console.log(`${engine}: ${bigRounds} converge rounds above the target before the throttle got the guest there`)
    expect(replication.state).toBe('migrated')
    await runsOnlyAtTarget(guest, guest.vmId, report.guestCounter)
  })

  it('resumes the source when the handover times out (the target stopped mid-handover), and a retry succeeds', async () => {
    const { guest, replication } = await replicated({ pattern: 'full', dirtyRate: 2000 })
    const target = backup.peerId.toString()
    let stopping: Promise<void> | undefined
    const failed = await replication.migrate(target, {
      handoverTimeoutMs: 800,
      fenceMs: 500,
      // The guest is paused here, the last epoch not yet taken: the target goes away.
      onProgress: (step) => { if (step.phase === 'stop-and-copy') stopping = host.stop() }
    }).then(() => undefined, (error: unknown) => error)
    await stopping
    expect(failed).toBeInstanceOf(MigrationFailedError)
    expect((failed as Error).message).toMatch(/could not be reached/)
    // Exactly one place: the source, running and replicating again at its own throttle; not the target.
    expect(resumed.some(entry => entry.vmId === guest.vmId)).toBe(false)
    expect(host.status().find(entry => entry.vmId === guest.vmId)?.state).not.toBe('resumed')
    expect(replication.state).toBe('replicating')
    expect(replication.status().throttle).toBe(0)
    const counter = guest.guestCounter()
    await guest.waitForCounter(counter + 100, { signal: AbortSignal.timeout(10_000) })
    expect(guest.state).toBe('running')

    // The target comes back: it gets a full epoch (it may hold part of the withdrawn one), then the retry.
    const failedAt = replication.epoch
    await host.start()
    await waitFor(() => replication.status().backups[0].ackedEpoch > failedAt, 20_000, 'the target to resync after coming back')
    const report = await replication.migrate(target, { handoverTimeoutMs: 5000 })
    expect(replication.state).toBe('migrated')
    await runsOnlyAtTarget(guest, guest.vmId, report.guestCounter)
  })

  it('resumes the source when a reachable target does not resume: the target is fenced and replication goes on', async () => {
    const { guest, replication } = await replicated({ pattern: 'full', dirtyRate: 2000 }, keeper)
    const target = keeper.peerId.toString()
    const failed = await replication.migrate(target, { handoverTimeoutMs: 600, fenceMs: 3000 }).then(() => undefined, (error: unknown) => error)
    expect(failed).toBeInstanceOf(MigrationFailedError)
    // The echo came: the target heard of a newer epoch and will not resume the old handover.
    expect((failed as Error).message).toMatch(/dropped the handover/)
    expect(replication.state).toBe('replicating')
    expect(guest.state).toBe('running')
    expect(keeperHost.status().find(entry => entry.vmId === guest.vmId)?.state).toBe('replicating')
    const failedAt = replication.epoch
    await waitFor(() => replication.status().backups[0].ackedEpoch > failedAt + 3, 20_000, 'replication to go on after the failed handover')
    await replication.stop({ release: true })
    await guest.stop()
  })
})
