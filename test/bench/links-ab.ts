// Link A/B: the sealed-link code of this checkout against that of other checkouts, in one
// process over the same libp2p nodes and path, so the machine's load hits every variant alike.
//
//   git archive <commit> | tar -x -C /tmp/base && ln -s "$PWD/node_modules" /tmp/base/
//   node test/bench/links-ab.ts /tmp/base [more checkouts…]
//
// Nodes: primary → one rhizomorph's forwarder → backup (TCP on 127.0.0.1, noise, yamux), as in
// bench:links. Each variant gets its own protocol prefix, forwarder and replica host on those
// nodes. A round measures the raw stream (bytes written on one plain forwarded stream) and then
// each variant in rotating order: a full epoch of LINKS_AB_MB (32) MiB of random pages over one
// sealed link until the backup acknowledged it applied, after a warm-up epoch of the same size
// (the replica's first touch of fresh memory). Reports medians over LINKS_AB_ROUNDS (9) rounds
// and the median per-round ratios, to raw and to the first variant: paired figures, less
// sensitive to other work on the machine than runs of bench:links one after the other.
import { randomBytes } from 'node:crypto'
import { availableParallelism, loadavg } from 'node:os'
import { basename, resolve } from 'node:path'
import type { Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from '../ram-replication/mesh.ts'

const REPO_ROOT = resolve(import.meta.dirname, '../..')

const PAGE = 4096
const CHUNK = 128 * 1024
const MB = Number(process.env.LINKS_AB_MB ?? 32)
const ROUNDS = Number(process.env.LINKS_AB_ROUNDS ?? 9)

interface Variant {
  name: string
  prefix: string
  /** The link's own modules of that checkout (not the package index: it declares koffi's KVM structs, which cannot be declared twice). */
  code: any
  host?: any
}

async function load (root: string, index: number): Promise<Variant> {
  const code = {
    ...await import(`${root}/ram-replication/transport/index.ts`),
    ...await import(`${root}/ram-replication/backup/replica-host.ts`),
    ...await import(`${root}/ram-replication/replication/backup-session.ts`)
  }
  return { name: root === REPO_ROOT ? 'this' : basename(root), prefix: `/mycelium/links-ab/${index}`, code }
}

const roots = [REPO_ROOT, ...process.argv.slice(2).map(dir => resolve(dir))]
const variants = await Promise.all(roots.map(load))
const [self] = variants
const forwarding = await import('../../ram-replication/transport/stripe-forwarder.ts')
const { writeSingleFrame } = await import('../../ram-replication/transport/forward-pipe.ts')
const RAW_PREFIX = '/mycelium/links-ab/raw'

const primary: Libp2p = await startReplicationNode()
const rhizomorph: Libp2p = await startReplicationNode()
const backup: Libp2p = await startReplicationNode()
await connect(rhizomorph, [backup])
await connect(primary, [rhizomorph])
for (const variant of variants) {
  await new variant.code.StripeForwarder(rhizomorph, { protocolPrefix: variant.prefix }).start()
  variant.host = new variant.code.ReplicaHost(backup, { protocolPrefix: variant.prefix, secretKey: secretKeyOf(backup), maxReplicaBytes: 4 * 1024 ** 3 })
  await variant.host.start()
}
await new self.code.StripeForwarder(rhizomorph, { protocolPrefix: RAW_PREFIX }).start()
let rawReceived = 0
await backup.handle(self.code.replicationProtocols(RAW_PREFIX).stripe, (stream: Stream) => {
  stream.addEventListener('message', (event) => { rawReceived += event.data.byteLength })
})

async function rawStream (bytes: number): Promise<number> {
  const stream = await primary.dialProtocol(rhizomorph.peerId, self.code.replicationProtocols(RAW_PREFIX).forward)
  writeSingleFrame(stream, forwarding.encodeForwardRequest(backup.peerId.toString()))
  await forwarding.awaitForwardAnswer(stream, AbortSignal.timeout(5000))
  const chunk = new Uint8Array(randomBytes(CHUNK))
  const before = rawReceived
  const started = performance.now()
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    if (!stream.send(chunk)) await stream.onDrain()
  }
  await waitFor(() => rawReceived - before >= bytes, 120_000, 'the raw bytes to arrive')
  const seconds = (performance.now() - started) / 1000
  await stream.close()
  return bytes / seconds
}

let sessions = 0
async function sealedLink (variant: Variant, bytes: number): Promise<number> {
  const vmId = `ab-${sessions++}`
  let acked = 0
  const session = new variant.code.BackupSession({
    node: primary,
    protocols: variant.code.replicationProtocols(variant.prefix),
    vmId,
    backup: backup.peerId.toString(),
    routes: [{ backup: backup.peerId.toString(), via: rhizomorph.peerId.toString() }],
    windowBytes: 2 << 20,
    secretKey: secretKeyOf(primary),
    logger: variant.code.silentLogger,
    onAck: (ack: { epoch: number }) => { acked = ack.epoch },
    onResumed: () => {},
    onMismatch: () => { throw new Error('backup diverged') }
  })
  await session.open()
  const encoder = new variant.code.EpochEncoder({ stripeBytes: 128 * 1024, delta: false })
  const image = new Uint8Array(randomBytes(bytes))
  const epoch = (n: number): unknown => ({
    vmId, epoch: n, full: true, memoryBytes: bytes, pageSize: PAGE,
    pages: Array.from({ length: bytes / PAGE }, (_, index) => ({ index, data: image.subarray(index * PAGE, (index + 1) * PAGE) })),
    vcpu: { regs: new Uint8Array(144), sregs: new Uint8Array(312) }, guestCounter: n, takenAt: Date.now()
  })
  session.enqueue(encoder.encode(epoch(1)))
  await waitFor(() => acked === 1, 120_000, 'the warm-up epoch')
  const encoded = encoder.encode(epoch(2))
  const started = performance.now()
  session.enqueue(encoded)
  await waitFor(() => acked === 2, 120_000, 'the epoch')
  const seconds = (performance.now() - started) / 1000
  await session.close()
  variant.host.drop(vmId)
  return encoded.bytes / seconds
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const mb = (rate: number): string => (rate / 1e6).toFixed(1)

console.log(`load average ${loadavg().map(l => l.toFixed(1)).join(' ')} on ${availableParallelism()} cores; variants: ${variants.map(v => v.name).join(', ')}; ${MB} MiB per load, ${ROUNDS} rounds`)
for (const variant of variants) await sealedLink(variant, 4 << 20)
await rawStream(4 << 20)
const rounds: Array<{ raw: number, link: number[] }> = []
for (let round = 0; round < ROUNDS; round++) {
  const raw = await rawStream(MB << 20)
  const link = new Array<number>(variants.length)
  for (let k = 0; k < variants.length; k++) {
    const i = (k + round) % variants.length
    link[i] = await sealedLink(variants[i], MB << 20)
  }
  rounds.push({ raw, link })
  console.log(`round ${round}: raw ${mb(raw)} MB/s; ${variants.map((v, i) => `${v.name} ${mb(link[i])} (${(link[i] / raw).toFixed(2)})`).join('; ')}`)
}
console.log(`median MB/s: raw ${mb(median(rounds.map(r => r.raw)))}; ${variants.map((v, i) => `${v.name} ${mb(median(rounds.map(r => r.link[i])))}`).join('; ')}`)
console.log(`median per-round 1 link / raw: ${variants.map((v, i) => `${v.name} ${median(rounds.map(r => r.link[i] / r.raw)).toFixed(2)}`).join('; ')}`)
if (variants.length > 1) console.log(`median per-round ratio to ${self.name}: ${variants.slice(1).map((v, i) => `${v.name} ${median(rounds.map(r => r.link[i + 1] / r.link[0])).toFixed(2)}`).join('; ')}`)
for (const variant of variants) await variant.host.stop()
await stopAll([primary, rhizomorph, backup])
