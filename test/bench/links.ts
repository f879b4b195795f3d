// Link bench: `npm run bench:links` (no KVM needed).
//
// What it measures, all in one run and one process (primary, four rhizomorphs running the
// forwarder, one backup; real libp2p nodes: TCP, noise, yamux):
//   raw      bytes written on one plain libp2p stream from the primary, spliced by rhizomorph 0's
//            forwarder, to a byte-counting handler on the backup: the same nodes and path as a link,
//            none of the link's work (no framing, sealing, hashing, credit, staging).
//   1 link   one sealed link over the same path: a full epoch of random pages to a replica that
//            already holds one (its memory is touched), encoded before the clock starts, until the
//            backup acknowledges it applied (sealing, framing, stripe hashes, receipts/credit and
//            the backup's staging and apply included).
//   4 links  the same, a four times larger epoch over four sealed links via rhizomorphs 0–3.
// Loopback: unshaped on 127.0.0.1; every node shares this process's CPU, so the figures are the
// cost of the path. Shaped (as root): the bench re-runs itself in a private network namespace
// whose loopback limits the traffic into each rhizomorph to LINKS_BENCH_MBIT (tc tbf), so the
// figures show how links add up. Every load is a fixed byte count: no loop runs unbounded.
// Each figure is the median of LINKS_BENCH_ROUNDS (3) interleaved rounds.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { availableParallelism, loadavg } from 'node:os'
import type { Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  BackupSession, EpochEncoder, ReplicaHost, StripeForwarder, replicationProtocols, silentLogger
} from '../../ram-replication/index.ts'
import type { Checkpoint } from '../../ram-replication/index.ts'
import { awaitForwardAnswer, encodeForwardRequest } from '../../ram-replication/transport/stripe-forwarder.ts'
import { writeSingleFrame } from '../../ram-replication/transport/forward-pipe.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from '../ram-replication/mesh.ts'
import { INSIDE_NETNS, rerunInNamespace, shapePorts } from './shaped-loopback.ts'

const PREFIX = '/mycelium/bench-links'
/** The raw stream's forwarder runs under its own prefix so its target is a byte counter, not the replica host. */
const RAW_PREFIX = '/mycelium/bench-links-raw'
const PAGE = 4096
const CHUNK = 128 * 1024
const RATE_MBIT = Number(process.env.LINKS_BENCH_MBIT ?? 40)
const LOOPBACK_MB = Number(process.env.LINKS_BENCH_MB ?? 64)
const SHAPED_SECONDS = 3
const FORWARDER_PORTS = [41101, 41102, 41103, 41104]
const ONLY = process.env.LINKS_BENCH_ONLY
const ROUNDS = Number(process.env.LINKS_BENCH_ROUNDS ?? 3)

interface Mesh {
  primary: Libp2p
  rhizomorphs: Libp2p[]
  backup: Libp2p
  host: ReplicaHost
  rawReceived: () => number
}

async function startMesh (shaped: boolean): Promise<Mesh> {
  const primary = await startReplicationNode()
  const rhizomorphs: Libp2p[] = []
  for (const port of FORWARDER_PORTS) rhizomorphs.push(await startReplicationNode(shaped ? port : 0))
  const backup = await startReplicationNode()
  for (const node of rhizomorphs) await connect(node, [backup])
  await connect(primary, rhizomorphs)
  for (const node of rhizomorphs) await new StripeForwarder(node, { protocolPrefix: PREFIX }).start()
  await new StripeForwarder(rhizomorphs[0], { protocolPrefix: RAW_PREFIX }).start()
  const host = new ReplicaHost(backup, { protocolPrefix: PREFIX, secretKey: secretKeyOf(backup), maxReplicaBytes: 4 * 1024 ** 3 })
  await host.start()
  let rawReceived = 0
  await backup.handle(replicationProtocols(RAW_PREFIX).stripe, (stream) => {
    stream.addEventListener('message', (event) => { rawReceived += event.data.byteLength })
  })
  return { primary, rhizomorphs, backup, host, rawReceived: () => rawReceived }
}

/** `bytes` on one plain stream through rhizomorph 0; bytes/s until the backup counted them all. */
async function rawStream (mesh: Mesh, bytes: number): Promise<number> {
  const stream: Stream = await mesh.primary.dialProtocol(mesh.rhizomorphs[0].peerId, replicationProtocols(RAW_PREFIX).forward)
  writeSingleFrame(stream, encodeForwardRequest(mesh.backup.peerId.toString()))
  await awaitForwardAnswer(stream, AbortSignal.timeout(5000))
  const chunk = new Uint8Array(randomBytes(CHUNK))
  const before = mesh.rawReceived()
  const started = performance.now()
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    if (!stream.send(chunk)) await stream.onDrain()
  }
  await waitFor(() => mesh.rawReceived() - before >= bytes, 120_000, 'the raw bytes to arrive')
  const seconds = (performance.now() - started) / 1000
  await stream.close()
  return bytes / seconds
}

function epochOf (vmId: string, image: Uint8Array, epoch: number): Checkpoint {
  return {
    vmId,
    epoch,
    full: true,
    memoryBytes: image.length,
    pageSize: PAGE,
    pages: Array.from({ length: image.length / PAGE }, (_, index) => ({ index, data: image.subarray(index * PAGE, (index + 1) * PAGE) })),
    vcpu: { regs: new Uint8Array(144), sregs: new Uint8Array(312) },
    guestCounter: epoch,
    takenAt: Date.now()
  }
}

/**
 * Full epochs of `bytes` over `links` sealed links; bytes/s of the second, until the backup
 * acknowledged it. The first epoch only warms up: it pays for the replica's first touch of its
 * freshly allocated memory (the kernel zero-filling pages), which a running replica pays once.
 */
async function sealedLinks (mesh: Mesh, links: number, bytes: number): Promise<number> {
  const vmId = `bench-${links}-${bytes}`
  let acked = 0
  const session = new BackupSession({
    node: mesh.primary,
    protocols: replicationProtocols(PREFIX),
    vmId,
    backup: mesh.backup.peerId.toString(),
    routes: mesh.rhizomorphs.slice(0, links).map(node => ({ backup: mesh.backup.peerId.toString(), via: node.peerId.toString() })),
    windowBytes: Number(process.env.LINKS_BENCH_WINDOW_MB ?? 2) << 20,
    secretKey: secretKeyOf(mesh.primary),
    logger: silentLogger,
    onAck: (ack) => { acked = ack.epoch },
    onResumed: () => {},
    onMismatch: () => { throw new Error('backup diverged') }
  })
  await session.open()
  const encoder = new EpochEncoder({ stripeBytes: 128 * 1024, delta: false })
  const image = new Uint8Array(randomBytes(bytes))
  session.enqueue(encoder.encode(epochOf(vmId, image, 1)))
  await waitFor(() => acked === 1, 120_000, `the warm-up epoch over ${links} links`)
  const encoded = encoder.encode(epochOf(vmId, image, 2))
  const started = performance.now()
  session.enqueue(encoded)
  await waitFor(() => acked === 2, 120_000, `the epoch over ${links} links`)
  const seconds = (performance.now() - started) / 1000
  await session.close()
  mesh.host.drop(vmId)
  return encoded.bytes / seconds
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

const mb = (rate: number): string => (rate / 1e6).toFixed(2).padStart(8)

async function measure (shaped: boolean): Promise<void> {
  const mesh = await startMesh(shaped)
  try {
    // Shaped: about SHAPED_SECONDS at the shaped rate per link; loopback: a fixed LOOPBACK_MB per link.
    const perLink = shaped ? Math.ceil(RATE_MBIT * 125_000 * SHAPED_SECONDS / (1 << 20)) << 20 : LOOPBACK_MB << 20
    // Warm-up: JIT and the connections' windows.
    await sealedLinks(mesh, 1, 4 << 20)
    if (ONLY === 'sealed1') {
      console.log(`1 sealed link: ${mb(await sealedLinks(mesh, 1, perLink))} MB/s`)
      return
    }
    // Rounds interleave the three loads so a burst of other work on the machine hits all of them
    // alike; each figure is the median of its rounds.
    const rounds: Array<{ raw: number, one: number, four: number }> = []
    for (let round = 0; round < ROUNDS; round++) {
      rounds.push({ raw: await rawStream(mesh, perLink), one: await sealedLinks(mesh, 1, perLink), four: await sealedLinks(mesh, 4, 4 * perLink) })
    }
    const raw = median(rounds.map(round => round.raw))
    const one = median(rounds.map(round => round.one))
    const four = median(rounds.map(round => round.four))
    const label = shaped ? `shaped ${RATE_MBIT} Mbit/s per rhizomorph` : 'loopback, unshaped'
    console.log(`${label.padEnd(32)} ${mb(raw)} ${mb(one)} ${mb(four)}   ${(one / raw).toFixed(2).padStart(6)} ${(four / one).toFixed(2).padStart(6)}   (${perLink >> 20} MiB per link, median of ${ROUNDS} rounds)`)
  } finally {
    await mesh.host.stop()
    await stopAll([mesh.primary, ...mesh.rhizomorphs, mesh.backup])
  }
}

function header (): void {
  console.log(`${'path'.padEnd(32)} ${'raw MB/s'.padStart(8)} ${'1 link'.padStart(8)} ${'4 links'.padStart(8)}   ${'1/raw'.padStart(6)} ${'4/1'.padStart(6)}`)
}

async function main (): Promise<void> {
  if (!INSIDE_NETNS) {
    console.log(`load average ${loadavg().map(load => load.toFixed(1)).join(' ')} on ${availableParallelism()} cores; all nodes in this one process`)
    header()
    await measure(false)
    if (ONLY != null) return
    if (!rerunInNamespace(fileURLToPath(import.meta.url), 'LINKS_BENCH_UNSHAPED')) console.log('shaped: not measured (needs root and ip netns)')
    return
  }
  shapePorts(FORWARDER_PORTS, RATE_MBIT)
  await measure(true)
}

await main()
