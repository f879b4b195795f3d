// The guest half of `npm run bench:ram`: a real page-writer guest on each engine this machine
// has (the interpreter everywhere, KVM where /dev/kvm opens), replicated from a primary to one
// backup over two sealed links forwarded by two rhizomorphs, every node in this process on
// 127.0.0.1. Two tables, each row says its engine:
//
// replication, per pattern (`full`: whole 4 KiB pages of fresh xorshift data; `light`: random
// pages, 64 bytes stamped) and epoch cadence (`max`: epochs back to back, the next taken as soon
// as the previous one is queued; `10ms`: the configured cadence), over RUN_SECONDS:
//   epochs/s    epochs taken / elapsed
//   pages/s     the guest's own write counter: (counter at end - at start) / elapsed
//   MB/s/link   stripe bytes handed to each link (encoded pages; sealing and framing not counted) / elapsed
//   lag         epochs taken but not yet acknowledged by the backup, sampled every 100 ms: mean and max
// migration, per pattern and pacing (10 k and 50 k pages/s, or `max` = unpaced), after 1 s of
// replication at the 10 ms cadence; converge = the round size (encoded) that starts stop-and-copy
// (256 KiB, the default; 16 KiB shows auto-converge at work):
//   pages/s     the guest's counter over that second (what it really wrote: the engine may not reach the pacing)
//   total       from migrate() to the target's word that the guest runs there
//   downtime    from pausing the guest at the source to that word
//   MB          encoded bytes of every converge round and of the handover epoch
//   rounds, throttle   converge rounds, and the throttle auto-converge reached
import type { Libp2p } from 'libp2p'
import {
  PrimaryReplication, ReplicaHost, StripeForwarder, allocateGuestMemory, availableEngines, guestRestorer, startGuest
} from '../../ram-replication/index.ts'
import type { GuestEngine, PageWriterParams, RunningGuest } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll } from '../ram-replication/mesh.ts'

const PREFIX = '/mycelium/bench-guest'
const MEMORY_MB = Number(process.env.RAM_BENCH_MEMORY_MB ?? 32)
const RUN_SECONDS = Number(process.env.RAM_BENCH_SECONDS ?? 4)
const LINKS = 2

const PATTERNS: Record<'full' | 'light', Partial<PageWriterParams>> = {
  full: { pattern: 'full' },
  light: { pattern: 'random', bytesPerWrite: 64 }
}

interface Mesh { primary: Libp2p, rhizomorphs: Libp2p[], backup: Libp2p, host: ReplicaHost, resumed: RunningGuest[] }

async function startMesh (engine: GuestEngine): Promise<Mesh> {
  const primary = await startReplicationNode()
  const rhizomorphs = [await startReplicationNode(), await startReplicationNode()]
  const backup = await startReplicationNode()
  for (const node of rhizomorphs) await connect(node, [backup])
  await connect(primary, rhizomorphs)
  for (const node of rhizomorphs) await new StripeForwarder(node, { protocolPrefix: PREFIX }).start()
  const resumed: RunningGuest[] = []
  const host = new ReplicaHost(backup, { protocolPrefix: PREFIX, secretKey: secretKeyOf(backup), allocateMemory: allocateGuestMemory, restoreGuest: guestRestorer(engine) })
  host.on('resumed', (_vmId, guest) => { resumed.push(guest as RunningGuest) })
  await host.start()
  return { primary, rhizomorphs, backup, host, resumed }
}

async function replicate (mesh: Mesh, engine: GuestEngine, workload: Partial<PageWriterParams>, epochIntervalMs: number): Promise<{ guest: RunningGuest, replication: PrimaryReplication }> {
  const guest = await startGuest(engine, { memoryBytes: MEMORY_MB << 20, workload })
  const replication = new PrimaryReplication({
    node: mesh.primary,
    protocolPrefix: PREFIX,
    guest,
    secretKey: secretKeyOf(mesh.primary),
    backups: [{ peerId: mesh.backup.peerId.toString(), via: mesh.rhizomorphs.map(node => node.peerId.toString()) }],
    epochIntervalMs
  })
  try {
    await replication.start()
    await replication.initialSync({ signal: AbortSignal.timeout(60_000) })
  } catch (error) {
    await guest.stop()
    throw error
  }
  return { guest, replication }
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const pad = (value: string, width: number): string => value.padStart(width)

async function replicationRow (mesh: Mesh, engine: GuestEngine, pattern: keyof typeof PATTERNS, cadence: 'max' | '10ms'): Promise<void> {
  const { guest, replication } = await replicate(mesh, engine, { ...PATTERNS[pattern], dirtyRate: 0 }, cadence === 'max' ? 0 : 10)
  try {
    const linkBytes = (): number[] => replication.status().links.map(link => link.bytesSent)
    const bytesBefore = linkBytes()
    const epochBefore = replication.epoch
    const counterBefore = guest.guestCounter()
    const startedAt = performance.now()
    const lags: number[] = []
    // Bounded: RUN_SECONDS of 100 ms samples.
    for (let sample = 0; sample < RUN_SECONDS * 10; sample++) {
      await sleep(100)
      const status = replication.status()
      lags.push(status.epoch - status.backups[0].ackedEpoch)
    }
    const seconds = (performance.now() - startedAt) / 1000
    const epochsPerS = (replication.epoch - epochBefore) / seconds
    const pagesPerS = (guest.guestCounter() - counterBefore) / seconds
    const perLink = linkBytes().map((bytes, index) => (bytes - bytesBefore[index]) / seconds / 1e6)
    const meanLag = lags.reduce((sum, lag) => sum + lag, 0) / lags.length
    console.log(`  ${pad(engine, 11)} ${pad(pattern, 5)} ${pad(cadence, 5)} ${pad(epochsPerS.toFixed(0), 8)} ${pad(pagesPerS.toFixed(0), 8)} ${pad(perLink.map(rate => rate.toFixed(1)).join(' / '), 12)} ${pad(`${meanLag.toFixed(1)} / ${Math.max(...lags)}`, 10)}`)
  } finally {
    await replication.stop({ release: true })
    await guest.stop()
  }
}

async function migrationRow (mesh: Mesh, engine: GuestEngine, pattern: keyof typeof PATTERNS, rate: number, convergeKiB: number): Promise<void> {
  const { guest, replication } = await replicate(mesh, engine, { ...PATTERNS[pattern], dirtyRate: rate }, 10)
  const label = `  ${pad(engine, 11)} ${pad(pattern, 5)} ${pad(rate === 0 ? 'max' : `${rate / 1000}k`, 6)} ${pad(`${convergeKiB}K`, 8)}`
  try {
    const counterBefore = guest.guestCounter()
    const startedAt = performance.now()
    await sleep(1000)
    const pagesPerS = (guest.guestCounter() - counterBefore) / ((performance.now() - startedAt) / 1000)
    try {
      const report = await replication.migrate(mesh.backup.peerId.toString(), { convergeBytes: convergeKiB * 1024, convergeTimeoutMs: 30_000, signal: AbortSignal.timeout(60_000) })
      console.log(`${label} ${pad(pagesPerS.toFixed(0), 8)} ${pad(report.totalMs.toFixed(0), 8)} ${pad(report.downtimeMs.toFixed(1), 9)} ${pad((report.bytes / 1e6).toFixed(1), 7)} ${pad(String(report.rounds), 6)} ${pad(`${Math.round(report.throttle * 100)}%`, 8)}`)
    } catch (error) {
      console.log(`${label} ${pad(pagesPerS.toFixed(0), 8)}  not migrated: ${(error as Error).message}`)
    }
  } finally {
    if (replication.state !== 'migrated') await replication.stop({ release: true })
    await guest.stop().catch(() => {})
    for (const moved of mesh.resumed.splice(0)) await moved.stop().catch(() => {})
    mesh.host.drop(guest.vmId)
  }
}

export async function guestTables (): Promise<void> {
  const engines = availableEngines()
  console.log(`guest replication: page writer, ${MEMORY_MB} MiB, 1 backup over ${LINKS} sealed links through 2 rhizomorphs, all in this process on 127.0.0.1; engines: ${engines.join(', ')}`)
  console.log(`  ${pad('engine', 11)} ${pad('pattern', 5)} ${pad('epoch', 5)} ${pad('epochs/s', 8)} ${pad('pages/s', 8)} ${pad('MB/s/link', 12)} ${pad('lag mean/max', 10)}`)
  for (const engine of engines) {
    const mesh = await startMesh(engine)
    try {
      for (const pattern of ['full', 'light'] as const) {
        for (const cadence of ['max', '10ms'] as const) await replicationRow(mesh, engine, pattern, cadence)
      }
    } finally {
      await mesh.host.stop()
      await stopAll([mesh.primary, ...mesh.rhizomorphs, mesh.backup])
    }
  }
  console.log('migration to the backup (auto-converge on; `converge`: the round size at which stop-and-copy starts):')
  console.log(`  ${pad('engine', 11)} ${pad('pattern', 5)} ${pad('paced', 6)} ${pad('converge', 8)} ${pad('pages/s', 8)} ${pad('total ms', 8)} ${pad('downtime', 9)} ${pad('MB', 7)} ${pad('rounds', 6)} ${pad('throttle', 8)}`)
  for (const engine of engines) {
    const mesh = await startMesh(engine)
    try {
      for (const pattern of ['full', 'light'] as const) {
        for (const rate of [10_000, 50_000, 0]) await migrationRow(mesh, engine, pattern, rate, 256)
        // The same guest at full speed with a tight target: rounds only get there throttled.
        await migrationRow(mesh, engine, pattern, 0, 16)
      }
    } finally {
      await mesh.host.stop()
      await stopAll([mesh.primary, ...mesh.rhizomorphs, mesh.backup])
    }
  }
}
