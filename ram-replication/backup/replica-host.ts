// The backup node's side of the stripe protocol. It keeps one GuestReplica per VM, stages
// stripes from any of the VM's links, receipts each stripe on the link it came by (in batches, receipt-batch.ts; returning
// that link's credit), and announces each applied epoch on every open link of the VM so one
// failed link cannot swallow the acknowledgement. A primary silent for `primaryTimeoutMs`
// on every link is reported lost; a handover epoch resumes the guest here, unless the primary
// has since announced a later epoch in a heartbeat (it gave the handover up: see migration.ts),
// and a heartbeat for a guest resumed here is answered `resumed`, so a primary whose handover
// timed out learns the outcome on any link.
import { randomBytes } from 'node:crypto'
import type { Connection, Stream } from '@libp2p/interface'
import type { ReplicatedGuest, VcpuState } from '../checkpoint.ts'
import { FrameChannel } from '../transport/frame-channel.ts'
import { decodeFrame, encodeEpochApplied, encodeLinkNonce, encodeResumed, encodeStripeReceipt } from '../transport/frames.ts'
import type { StripeFrame } from '../transport/frames.ts'
import { replicationProtocols, silentLogger } from '../transport/protocols.ts'
import type { ReplicationLogger, ReplicationNode } from '../transport/protocols.ts'
import { InvalidFrameError } from '../transport/errors.ts'
import { deriveLinkKeys, FrameOpener, FrameSealer, SEAL_NONCE_BYTES } from '../transport/link-seal.ts'
import { GuestReplica } from './guest-replica.ts'
import { ReceiptBatch } from './receipt-batch.ts'
import type { AppliedEpoch } from './guest-replica.ts'
import { ReplicaCapacityError, ReplicaMismatchError, ReplicaNotResumableError } from './errors.ts'

/** What a backup hands the VMM to start the guest from its copy. */
export interface ReplicaImage {
  vmId: string
  memory: Uint8Array
  memoryBytes: number
  pageSize: number
  vcpu: VcpuState
  guestCounter: number
  epoch: number
  /** The engine the guest ran on at the primary (absent: a primary older than the interpreter, i.e. KVM). */
  engine?: string
}

/** Starts a guest from a replica image (the VMM's "create a VM from memory and vCPU state"). */
export type GuestRestorer = ((image: ReplicaImage, options?: { signal?: AbortSignal }) => Promise<ReplicatedGuest>) & {
  /** Told when a replica of a guest on `engine` arrives, so a resume later costs less (e.g. a vCPU thread started ahead). */
  prepare?: (engine: string | undefined) => void
}

export interface ReplicaHostOptions {
  protocolPrefix: string
  /** This node's Ed25519 secret (32 bytes): opens sealed links. With it, forwarded links in the clear are refused. */
  secretKey?: Uint8Array
  /** Total guest memory this node agrees to hold for others (default 2 GiB; set it from the node's free RAM). */
  maxReplicaBytes?: number
  /** Largest stripe frame accepted. */
  maxFrameBytes?: number
  maxStagingBytes?: number
  /** Streams accepted per connection (links of all VMs through the same neighbour). */
  maxInboundStreams?: number
  hashMemory?: boolean
  /** After this long without a frame from a VM's primary on any link, the primary is lost. */
  primaryTimeoutMs?: number
  restoreGuest?: GuestRestorer
  /**
   * Resume the guest here as soon as its primary is silent. UNSAFE with more than one backup or
   * under a partition (a silent primary may still run): RamReplication never sets it and fails
   * over by lease (ram-replication/lease). Kept for the single-backup process-kill test of the
   * stripe protocol alone.
   */
  resumeOnPrimaryLoss?: boolean
  /**
   * Fencing: whether `origin` may send stripes of `vmId` now (it holds the VM's lease as this
   * node's vote knows it). A former primary that lost its lease is refused, and the node that
   * holds the newer term replaces the replica of the one before. Undefined: no vote on it here.
   */
  admitOrigin?: (vmId: string, origin: string) => boolean | undefined
  /**
   * How a handover epoch starts the guest here (default: at once). With leases, the node first
   * takes the VM's next term, then starts the guest through `start`.
   */
  takeOver?: (vmId: string, start: () => Promise<ReplicatedGuest>) => Promise<ReplicatedGuest>
  /** Allocates a replica's memory (e.g. the VMM's mmapped guest memory, so resuming copies nothing). */
  allocateMemory?: (bytes: number) => Uint8Array
  logger?: ReplicationLogger
}

export interface ReplicaStatus {
  vmId: string
  origin: string
  appliedEpoch: number
  guestCounter: number
  memoryBytes: number
  links: number
  stagedBytes: number
  maxStagedBytes: number
  pendingEpochs: number[]
  lastHeardMs: number
  state: 'replicating' | 'primary-lost' | 'resumed'
}

export interface ReplicaHostEvents {
  applied: (epoch: AppliedEpoch) => void
  primaryLost: (replica: GuestReplica) => void
  resumed: (vmId: string, guest: ReplicatedGuest) => void
}

interface ReplicaEntry {
  replica: GuestReplica
  run: number
  channels: Set<FrameChannel>
  state: 'replicating' | 'primary-lost' | 'resumed'
  guest?: Promise<ReplicatedGuest>
  /** The guest runs here (its restore finished): only now may a heartbeat be answered `resumed`. */
  running: boolean
  /** The highest epoch the primary's heartbeats announced in this run: older handover epochs were given up. */
  announcedEpoch: number
}

export const DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024

export class ReplicaHost {
  private readonly node: ReplicationNode
  private readonly protocol: string
  private readonly options: ReplicaHostOptions
  private readonly logger: ReplicationLogger
  private readonly entries = new Map<string, ReplicaEntry>()
  private readonly listeners: { [K in keyof ReplicaHostEvents]: Array<ReplicaHostEvents[K]> } = { applied: [], primaryLost: [], resumed: [] }
  private readonly channels = new Set<FrameChannel>()
  /** Each link's receipts not sent yet. */
  private readonly receipts = new Map<FrameChannel, ReceiptBatch>()
  private watchdog?: ReturnType<typeof setInterval>

  constructor (node: ReplicationNode, options: ReplicaHostOptions) {
    this.node = node
    this.protocol = replicationProtocols(options.protocolPrefix).stripe
    this.options = options
    this.logger = options.logger ?? silentLogger
  }

  on<K extends keyof ReplicaHostEvents> (event: K, listener: ReplicaHostEvents[K]): void {
    this.listeners[event].push(listener)
  }

  async start (): Promise<void> {
    await this.node.handle(this.protocol, (stream, connection) => { this.accept(stream, connection) }, {
      maxInboundStreams: this.options.maxInboundStreams ?? 64
    })
    const timeout = this.options.primaryTimeoutMs ?? 1000
    this.watchdog = setInterval(() => { this.checkPrimaries(timeout) }, Math.max(20, Math.floor(timeout / 4)))
    this.watchdog.unref?.()
  }

  /** Stop taking frames at once (the open links first), then stop accepting new links. */
  async stop (): Promise<void> {
    if (this.watchdog != null) clearInterval(this.watchdog)
    for (const channel of this.channels) channel.abort(new Error('backup stopped'))
    this.channels.clear()
    await this.node.unhandle(this.protocol)
  }

  replica (vmId: string): GuestReplica | undefined {
    return this.entries.get(vmId)?.replica
  }

  status (): ReplicaStatus[] {
    const now = Date.now()
    return [...this.entries.values()].map(({ replica, channels, state }) => ({
      vmId: replica.vmId,
      origin: replica.origin,
      appliedEpoch: replica.appliedEpoch,
      guestCounter: replica.guestCounter,
      memoryBytes: replica.memoryBytes,
      links: channels.size,
      stagedBytes: replica.stagedBytes,
      maxStagedBytes: replica.maxStagedBytes,
      pendingEpochs: replica.pendingEpochs(),
      lastHeardMs: now - replica.lastHeardAt,
      state
    }))
  }

  /** Start the guest here from the last complete epoch (failover, or the end of a migration). */
  async resume (vmId: string, options: { signal?: AbortSignal } = {}): Promise<ReplicatedGuest> {
    const entry = this.entries.get(vmId)
    if (entry == null) throw new ReplicaNotResumableError(`no replica of ${vmId} here`)
    const guest = await this.startGuest(entry, options)
    for (const channel of entry.channels) channel.abort(new Error(`${vmId} resumed on this node`))
    return guest
  }

  private async startGuest (entry: ReplicaEntry, options: { signal?: AbortSignal }): Promise<ReplicatedGuest> {
    if (entry.guest != null) return await entry.guest
    const { replica } = entry
    if (replica.appliedEpoch === 0 || replica.vcpu == null) throw new ReplicaNotResumableError(`replica of ${replica.vmId} has no complete epoch yet`)
    const restoreGuest = this.options.restoreGuest
    if (restoreGuest == null) throw new ReplicaNotResumableError('this node cannot start guests (no restorer configured)')
    // From now on the replica takes no stripes: its memory belongs to the running guest, once
    // the epochs already here are applied (a full one may be half-way through its turns).
    entry.state = 'resumed'
    entry.guest = (async () => {
      await replica.settle()
      return await restoreGuest({
        vmId: replica.vmId,
        memory: replica.memory,
        memoryBytes: replica.memoryBytes,
        pageSize: replica.pageSize,
        vcpu: replica.vcpu!,
        guestCounter: replica.guestCounter,
        epoch: replica.appliedEpoch,
        engine: replica.engine
      }, options)
    })()
    try {
      const guest = await entry.guest
      entry.running = true
      for (const listener of this.listeners.resumed) listener(replica.vmId, guest)
      return guest
    } catch (error) {
      entry.guest = undefined
      entry.state = 'primary-lost'
      throw error
    }
  }

  /** Forget a replica (the VM stopped, or this node is no longer its backup). */
  drop (vmId: string): void {
    const entry = this.entries.get(vmId)
    if (entry == null) return
    for (const channel of entry.channels) channel.abort(new Error(`${vmId} dropped`))
    entry.replica.close()
    this.entries.delete(vmId)
  }

  private accept (stream: Stream, connection: Connection): void {
    let origin: string | undefined
    let run = 0
    const vms = new Set<ReplicaEntry>()
    const channel: FrameChannel = new FrameChannel(stream, {
      maxFrameBytes: this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      onFrame: (body, opened) => {
        const frame = decodeFrame(body, { authenticated: opened })
        if (origin == null) {
          if (frame.kind !== 'origin') throw new InvalidFrameError(`first frame is ${frame.kind}, expected origin`)
          const secretKey = this.options.secretKey
          if (frame.salt.length > 0) {
            if (secretKey == null) throw new InvalidFrameError('sealed link, but this backup has no key to open it')
            // A fresh nonce of ours in the keys: a recorded session replayed to us opens nothing.
            const nonce = new Uint8Array(randomBytes(SEAL_NONCE_BYTES))
            const keys = deriveLinkKeys(secretKey, frame.peerId, frame.peerId, this.node.peerId.toString(), frame.salt, nonce)
            // The nonce goes out in the clear (send() reads the sealer synchronously), then sealing starts both ways.
            channel.send(encodeLinkNonce(nonce)).catch(() => {})
            channel.seal(new FrameSealer(keys.toPrimary), new FrameOpener(keys.toBackup))
          } else if (secretKey != null && frame.peerId !== connection.remotePeer.toString()) {
            // In the clear only when the primary is the authenticated peer of this very connection.
            throw new InvalidFrameError(`forwarded link from ${frame.peerId} is not sealed`)
          }
          origin = frame.peerId
          run = frame.run
          return
        }
        if (frame.kind === 'stripe') {
          const entry = this.entryFor(frame, origin, run)
          if (!vms.has(entry)) {
            vms.add(entry)
            entry.channels.add(channel)
          }
          this.onStripe(entry, channel, frame, body.length)
        } else if (frame.kind === 'heartbeat') {
          const entry = this.entries.get(frame.vmId)
          if (entry != null && entry.replica.origin === origin) {
            entry.replica.lastHeardAt = Date.now()
            if (run === entry.run && frame.epoch > entry.announcedEpoch) entry.announcedEpoch = frame.epoch
            // Recorded before the echo: the echo tells the primary that no older handover will resume here.
            // While the guest is being restored here neither answer is true yet (it may still
            // fail, and an echo would let the primary resume too): say nothing until it runs.
            if (entry.state !== 'resumed') channel.send(body).catch(() => {})
            else if (entry.running) channel.send(encodeResumed(frame.vmId, entry.replica.appliedEpoch, entry.replica.guestCounter)).catch(() => {})
            if (!vms.has(entry)) {
              vms.add(entry)
              entry.channels.add(channel)
            }
          }
        } else if (frame.kind === 'release') {
          const entry = this.entries.get(frame.vmId)
          if (entry != null && entry.replica.origin === origin && entry.state !== 'resumed') {
            this.logger.info('primary %s released its replica of %s', origin, frame.vmId)
            this.drop(frame.vmId)
          }
        } else {
          throw new InvalidFrameError(`a backup does not take ${frame.kind} frames`)
        }
      },
      onClose: (error) => {
        this.channels.delete(channel)
        this.receipts.get(channel)?.discard()
        this.receipts.delete(channel)
        for (const entry of vms) entry.channels.delete(channel)
        if (error != null) this.logger.debug('stripe stream from %s closed: %s', connection.remotePeer.toString(), error.message)
      }
    })
    this.channels.add(channel)
    this.receipts.set(channel, new ReceiptBatch(channel))
  }

  private entryFor (stripe: StripeFrame, origin: string, run: number): ReplicaEntry {
    const existing = this.entries.get(stripe.vmId)
    const admitted = this.options.admitOrigin?.(stripe.vmId, origin)
    if (admitted === false) throw new ReplicaMismatchError(`${origin} does not hold the lease of ${stripe.vmId}: its stripes are refused`)
    if (existing != null) {
      if (existing.state === 'resumed') throw new ReplicaMismatchError(`${stripe.vmId} already runs on this node`)
      if (existing.replica.origin === origin) {
        if (run < existing.run) throw new ReplicaMismatchError(`stripes of ${stripe.vmId} from an older run of ${origin}`)
        if (run > existing.run) {
          this.logger.info('%s restarted the replication of %s', origin, stripe.vmId)
          existing.replica.restart()
          existing.run = run
          existing.announcedEpoch = 0
        }
        return existing
      }
      // Another node now runs the VM (it took over after this replica's primary was lost).
      if (existing.state !== 'primary-lost' && admitted !== true) throw new ReplicaMismatchError(`${stripe.vmId} is replicated from ${existing.replica.origin}, not ${origin}`)
      this.logger.info('%s now runs %s: replacing the replica from the lost %s', origin, stripe.vmId, existing.replica.origin)
      this.drop(stripe.vmId)
    }
    let held = 0
    for (const { replica } of this.entries.values()) held += replica.memoryBytes
    const limit = this.options.maxReplicaBytes ?? 2 * 1024 ** 3
    if (held + stripe.memoryBytes > limit) throw new ReplicaCapacityError(`holding ${stripe.vmId} (${stripe.memoryBytes} bytes) would exceed ${limit} bytes`)
    const entry: ReplicaEntry = {
      replica: new GuestReplica({
        vmId: stripe.vmId,
        origin,
        memoryBytes: stripe.memoryBytes,
        pageSize: stripe.pageSize,
        maxStagingBytes: this.options.maxStagingBytes,
        hashMemory: this.options.hashMemory,
        allocateMemory: this.options.allocateMemory,
        onApplied: (epoch) => { this.onApplied(entry, epoch) }
      }),
      run,
      channels: new Set(),
      state: 'replicating',
      announcedEpoch: 0,
      running: false
    }
    this.entries.set(stripe.vmId, entry)
    this.options.restoreGuest?.prepare?.(stripe.engine)
    this.logger.info('replicating %s (%d bytes) from %s', stripe.vmId, stripe.memoryBytes, origin)
    return entry
  }

  private onStripe (entry: ReplicaEntry, channel: FrameChannel, stripe: StripeFrame, bytes: number): void {
    if (entry.state === 'primary-lost') entry.state = 'replicating'
    entry.replica.accept(stripe, bytes)
    this.receipts.get(channel)?.add(encodeStripeReceipt(stripe.vmId, stripe.epoch, stripe.stripeIndex), bytes)
  }

  /** An epoch is applied (at once, or turns after its last stripe): acknowledged on every open link of the VM. */
  private onApplied (entry: ReplicaEntry, epoch: AppliedEpoch): void {
    if (this.entries.get(epoch.vmId) !== entry) return
    const ack = encodeEpochApplied(epoch)
    for (const channel of entry.channels) {
      this.receipts.get(channel)?.flush()
      channel.send(ack).catch(() => {})
    }
    for (const listener of this.listeners.applied) listener(epoch)
    if (epoch.handover && entry.announcedEpoch <= epoch.epoch) this.handover(entry, epoch)
    else if (epoch.handover) this.logger.warn('handover epoch %d of %s arrived after the primary gave it up (epoch %d announced): not resuming', epoch.epoch, epoch.vmId, entry.announcedEpoch)
  }

  private handover (entry: ReplicaEntry, epoch: AppliedEpoch): void {
    const start = async (): Promise<ReplicatedGuest> => await this.startGuest(entry, {})
    const started = this.options.takeOver === undefined ? start() : this.options.takeOver(epoch.vmId, start)
    started.then(() => {
      const frame = encodeResumed(epoch.vmId, epoch.epoch, epoch.guestCounter)
      for (const channel of entry.channels) {
        channel.send(frame).then(async () => { await channel.close() }, () => {})
      }
    }, (error: Error) => {
      this.logger.error('handover of %s failed: %s', epoch.vmId, error.message)
    })
  }

  private checkPrimaries (timeoutMs: number): void {
    const now = Date.now()
    for (const entry of this.entries.values()) {
      if (entry.state !== 'replicating' || entry.replica.appliedEpoch === 0) continue
      if (now - entry.replica.lastHeardAt < timeoutMs) continue
      entry.state = 'primary-lost'
      this.logger.warn('primary of %s silent for %d ms', entry.replica.vmId, now - entry.replica.lastHeardAt)
      for (const listener of this.listeners.primaryLost) listener(entry.replica)
      if (this.options.resumeOnPrimaryLoss === true) {
        this.resume(entry.replica.vmId).catch((error: Error) => {
          this.logger.error('failover of %s failed: %s', entry.replica.vmId, error.message)
        })
      }
    }
  }
}

export function replicaHost (options: ReplicaHostOptions): (node: ReplicationNode) => ReplicaHost {
  return (node) => new ReplicaHost(node, options)
}
