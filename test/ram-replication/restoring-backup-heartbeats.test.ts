// A backup still restoring a guest answers heartbeats neither `resumed` nor echo
// (ram-replication/backup/replica-host.ts): until the guest runs there, `resumed` is not true
// (the restore may still fail) and an echo would let the source resume its copy beside it.
// Answering `resumed` while restoring ended the source's handover as if the guest ran at the
// target: the source stopped its copy, and a restore that then failed left it running nowhere.
//
// A migration between two in-process libp2p nodes on 127.0.0.1, guest on the interpreted
// engine (every machine). The target's restorer is the real one behind a gate the test holds:
// the handover epoch arrives, the restore starts and waits, the source's handover times out
// and it fences with heartbeats the target hears while restoring. Then the gate lets the
// restore finish (the guest runs there) or fail (the real restorer refuses a corrupted image).
// Without leases, as here, the source runs its copy again after the fence until the target's
// `resumed` stops it (migration.ts); with leases it could not take back the term the target holds.
import { afterEach, describe, expect, it } from 'vitest'
import type { Libp2p } from 'libp2p'
import {
  InvalidGuestImageError, MigrationFailedError, PrimaryReplication, ReplicaHost, allocateGuestMemory, guestRestorer, startGuest, verifyGuestMemory
} from '../../ram-replication/index.ts'
import type { GuestRestorer, ReplicaImage, RunningGuest } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from './mesh.ts'

const PREFIX = '/mycelium/restoring-backup-test'
const MEMORY = 8 * 1024 * 1024
// The handover waits this long for `resumed`, then the fence heartbeats for FENCE_MS.
const HANDOVER_TIMEOUT_MS = 1000
const FENCE_MS = 600

/** The interpreted restorer, held at its start until the test says how the restore ends. */
interface RestoreGate {
  restorer: GuestRestorer
  /** Resolves when a restore began (the backup's state for the VM is `resumed` from then). */
  started: Promise<{ at: number, image: ReplicaImage }>
  /** The restore goes on with the image it was given: the guest runs. */
  run: () => void
  /** The restore goes on with the image's vCPU state cut short: the real restorer refuses it. */
  corrupt: () => void
  /** Settles when the restore ended, with the guest or the restorer's error. */
  ended: Promise<RunningGuest | Error>
}

function restoreGate (): RestoreGate {
  const restore = guestRestorer('interpreted')
  let begin!: (value: { at: number, image: ReplicaImage }) => void
  let decide!: (corrupted: boolean) => void
  let end!: (value: RunningGuest | Error) => void
  const started = new Promise<{ at: number, image: ReplicaImage }>(resolve => { begin = resolve })
  const decided = new Promise<boolean>(resolve => { decide = resolve })
  const ended = new Promise<RunningGuest | Error>(resolve => { end = resolve })
  const restorer: GuestRestorer = async (image, options) => {
    begin({ at: Date.now(), image })
    const corrupted = await decided
    const given = corrupted ? { ...image, vcpu: { regs: image.vcpu.regs.subarray(0, 8), sregs: image.vcpu.sregs } } : image
    try {
      const guest = await restore(given, options)
      end(guest)
      return guest
    } catch (error) {
      end(error as Error)
      throw error
    }
  }
  return { restorer, started, run: () => { decide(false) }, corrupt: () => { decide(true) }, ended }
}

let nodes: Libp2p[] = []
let hosts: ReplicaHost[] = []
let guests: RunningGuest[] = []

afterEach(async () => {
  for (const guest of guests) await guest.stop().catch(() => {})
  for (const host of hosts) await host.stop()
  await stopAll(nodes)
  nodes = []
  hosts = []
  guests = []
})

interface Handover {
  guest: RunningGuest
  replication: PrimaryReplication
  host: ReplicaHost
  target: string
  gate: RestoreGate
  /** Every `resumed` and every heartbeat echo the source heard from the time the migration began. */
  resumedAt: Array<{ backup: string, epoch: number }>
  echoes: Array<{ backup: string, epoch: number }>
  /** What the migration ended with (an error: the handover failed and the source runs on). */
  outcome: unknown
  handoverEpoch: number
}

/** Replicates a guest to a backup whose restores wait at the gate, and migrates it there. */
async function handoverToRestoringBackup (): Promise<Handover> {
  const primary = await startReplicationNode()
  const backup = await startReplicationNode()
  nodes.push(primary, backup)
  await connect(primary, [backup])
  const gate = restoreGate()
  const host = new ReplicaHost(backup, { protocolPrefix: PREFIX, secretKey: secretKeyOf(backup), allocateMemory: allocateGuestMemory, restoreGuest: gate.restorer })
  hosts.push(host)
  await host.start()
  gate.ended.then(result => { if (!(result instanceof Error)) guests.push(result) }, () => {})

  const guest = await startGuest('interpreted', { memoryBytes: MEMORY, workload: { pattern: 'random', dirtyRate: 2000 } })
  guests.push(guest)
  const target = backup.peerId.toString()
  const replication = new PrimaryReplication({
    node: primary,
    protocolPrefix: PREFIX,
    guest,
    secretKey: secretKeyOf(primary),
    backups: [{ peerId: target, via: [undefined] }],
    epochIntervalMs: 10,
    heartbeatMs: 50
  })
  await replication.start()
  await replication.initialSync()
  const resumedAt: Array<{ backup: string, epoch: number }> = []
  const echoes: Array<{ backup: string, epoch: number }> = []
  replication.on('resumed', (from, epoch) => { resumedAt.push({ backup: from, epoch }) })
  replication.on('echo', (from, epoch) => { echoes.push({ backup: from, epoch }) })

  let handoverEpoch = 0
  const outcome = await replication.migrate(target, {
    handoverTimeoutMs: HANDOVER_TIMEOUT_MS,
    fenceMs: FENCE_MS,
    onProgress: (step) => { if (step.phase === 'stop-and-copy') handoverEpoch = replication.epoch + 1 }
  }).then(report => report, (error: unknown) => error)
  return { guest, replication, host, target, gate, resumedAt, echoes, outcome, handoverEpoch }
}

/** The migration ended while the target was still restoring, and the target had heard the fence. */
async function expectFencedWhileRestoring (h: Handover): Promise<void> {
  // The restore began before the handover timed out, and has not ended: the gate still holds it.
  const { at: restoringSince, image } = await h.gate.started
  expect(image.epoch).toBe(h.handoverEpoch)
  expect(h.host.status().find(s => s.vmId === h.guest.vmId)?.state).toBe('resumed')
  // The fence's heartbeats reached the target while it restored...
  expect(h.host.replica(h.guest.vmId)!.lastHeardAt).toBeGreaterThan(restoringSince)
  // ...and it answered neither: no `resumed` (the migration would have completed late) and no
  // echo of the fence's heartbeats, which announce the epoch after the handover (the target
  // would have been fenced, "dropped the handover"). So the source found it unreachable.
  expect(h.resumedAt).toEqual([])
  expect(h.echoes.filter(e => e.epoch > h.handoverEpoch)).toEqual([])
  expect(h.outcome).toBeInstanceOf(MigrationFailedError)
  expect((h.outcome as Error).message).toMatch(/could not be reached/)
  // The source runs on.
  expect(h.guest.state).toBe('running')
  expect(h.replication.state).toBe('replicating')
}

describe('a backup restoring a guest, heard by the source during a handover', () => {
  it('answers the fence neither resumed nor echo; when the restore fails the source never hears resumed and keeps its guest running', async () => {
    const h = await handoverToRestoringBackup()
    await expectFencedWhileRestoring(h)

    h.gate.corrupt()
    expect(await h.gate.ended).toBeInstanceOf(InvalidGuestImageError)
    // The target gave the guest up: it echoes heartbeats again (it will not resume that handover).
    await waitFor(() => h.host.status().find(s => s.vmId === h.guest.vmId)?.state !== 'resumed', 10_000, 'the target to give the failed restore up')
    const echoed = h.echoes.length
    await waitFor(() => h.echoes.length > echoed, 10_000, 'an echo from the target after its restore failed')
    expect(h.resumedAt).toEqual([])
    // The guest still runs at the source, and only there: it keeps counting.
    const counter = h.guest.guestCounter()
    await h.guest.waitForCounter(counter + 100, { signal: AbortSignal.timeout(10_000) })
    expect(h.guest.state).toBe('running')
    expect(h.replication.state).toBe('replicating')
    expect(h.resumedAt).toEqual([])
    await h.replication.stop({ release: true })
  }, 60_000)

  it('answers the fence neither resumed nor echo; once the restored guest runs, it says resumed and the source stops its copy', async () => {
    const h = await handoverToRestoringBackup()
    await expectFencedWhileRestoring(h)

    h.gate.run()
    const moved = await h.gate.ended
    expect(moved).not.toBeInstanceOf(Error)
    await waitFor(() => h.resumedAt.length > 0, 10_000, 'the target\'s resumed')
    expect(h.resumedAt[0]).toEqual({ backup: h.target, epoch: h.handoverEpoch })
    // A `resumed` after the failed handover: the guest must not run twice, the source stops its copy.
    await waitFor(() => h.guest.state === 'stopped', 10_000, 'the source to stop its copy')
    expect(h.replication.state).toBe('migrated')
    // The guest runs on at the target from the handover epoch.
    const target = moved as RunningGuest
    await target.waitForCounter(target.guestCounter() + 100, { signal: AbortSignal.timeout(10_000) })
    await target.pause()
    expect(verifyGuestMemory(target.memory()).ok).toBe(true)
  }, 60_000)
})
