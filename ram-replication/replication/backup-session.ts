// The primary's view of one backup: its links, the stripes waiting to go, the epochs sent but
// not yet acknowledged (kept for re-sending), and what the backup acknowledged. Stripes go out
// in epoch order on whichever link has credit, so links share an epoch in proportion to their
// speed; the stripes of a link that fails are queued again for the surviving links.
import type { EncodedEpoch } from '../transport/epoch-encoder.ts'
import type { EncodedStripe, ReplicationFrame } from '../transport/frames.ts'
import { StripeLink } from '../transport/stripe-link.ts'
import type { LinkRoute } from '../transport/stripe-link.ts'
import type { ReplicationLogger, ReplicationNode, ReplicationProtocols } from '../transport/protocols.ts'
import { RateMeter } from './rate-meter.ts'

export interface EpochAcknowledgement {
  backup: string
  epoch: number
  guestCounter: number
  contentHash: Uint8Array
  memoryHash?: Uint8Array
  /** From the checkpoint to the acknowledgement. */
  lagMs: number
}

export interface LinkStatus {
  via: string
  up: boolean
  /** Smoothed heartbeat round trip (ms), queueing behind stripes included; absent until measured. */
  rttMs?: number
  bytesPerS: number
  bytesSent: number
  inFlightBytes: number
  maxInFlightBytes: number
  windowBytes: number
}

export interface BackupStatus {
  peerId: string
  ackedEpoch: number
  lagMs: number
  backlogBytes: number
  resyncing: boolean
  /** Stripes sent again because the link that carried them failed before the backup had them. */
  resentStripes: number
  links: LinkStatus[]
}

export interface BackupSessionOptions {
  node: ReplicationNode
  protocols: ReplicationProtocols
  vmId: string
  backup: string
  routes: LinkRoute[]
  windowBytes: number
  /** Identifies this replication run to the backup (a newer run restarts its epochs). */
  run?: number
  /** This node's Ed25519 secret (32 bytes): seals the links end to end. */
  secretKey?: Uint8Array
  logger: ReplicationLogger
  onAck: (ack: EpochAcknowledgement) => void
  onResumed: (backup: string, epoch: number) => void
  /** The backup echoed a heartbeat that announced `epoch`. */
  onEcho?: (backup: string, epoch: number) => void
  onMismatch: (backup: string, epoch: number) => void
}

interface PendingEpoch {
  encoded: EncodedEpoch
  sentAt: number
}

interface LinkSlot {
  route: LinkRoute
  link?: StripeLink
  meter: RateMeter
  opening: boolean
  retryMs: number
  retryTimer?: ReturnType<typeof setTimeout>
  bytesBefore: number
}

/**
 * Bytes of stripes handed to the links in one turn of the event loop; the rest go in the next
 * turns. Sealing, framing and noise-encrypting a full epoch's worth of windows at once (several
 * MiB per link) held the loop for hundreds of milliseconds on a busy machine.
 */
const SEND_BYTES_PER_TURN = 1024 * 1024

function compareStripes (a: EncodedStripe, b: EncodedStripe): number {
  return a.epoch - b.epoch || a.stripeIndex - b.stripeIndex
}

export class BackupSession {
  readonly backup: string
  private readonly options: BackupSessionOptions
  private readonly slots: LinkSlot[]
  private queue: EncodedStripe[] = []
  private readonly epochs = new Map<number, PendingEpoch>()
  ackedEpoch = 0
  lastAckAt = 0
  backlogBytes = 0
  /** Dropped from the epoch stream (best effort): waits for the next full epoch. */
  awaitingFull = false
  resentStripes = 0
  private stopped = false
  /** Stripe bytes handed to the links since the event loop last turned (every pump of the turn counts). */
  private sentThisTurn = 0
  /** At the next turn: the count starts over and the pump goes on. */
  private nextTurn?: ReturnType<typeof setImmediate>

  constructor (options: BackupSessionOptions) {
    this.options = options
    this.backup = options.backup
    this.slots = options.routes.map(route => ({ route, meter: new RateMeter(), opening: false, retryMs: 250, bytesBefore: 0 }))
  }

  /**
   * Open every link; resolves when at least one is up, or rejects if none is by the deadline
   * (`signal`, else 5 s). A link that fails at once is tried again meanwhile (scheduleReopen):
   * libp2p can hand out a connection that is closing (a duplicate closed just after a mesh
   * formed), and one refused stream must not fail a `vm run`.
   */
  async open (signal?: AbortSignal): Promise<void> {
    const deadline = signal ?? AbortSignal.timeout(5000)
    const results = await Promise.allSettled(this.slots.map(async slot => { await this.openSlot(slot, deadline) }))
    while (!this.stopped && !deadline.aborted && !this.slots.some(slot => slot.link?.up === true)) {
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    if (!this.slots.some(slot => slot.link?.up === true)) {
      const reasons = results.flatMap(result => result.status === 'rejected' ? [(result.reason as Error).message] : [])
      throw new AggregateError(results.flatMap(result => result.status === 'rejected' ? [result.reason] : []), `no link to ${this.backup} could be opened: ${reasons.join('; ')}`)
    }
  }

  private async openSlot (slot: LinkSlot, signal?: AbortSignal): Promise<void> {
    if (slot.opening || this.stopped) return
    slot.opening = true
    try {
      slot.link = await StripeLink.open({
        node: this.options.node,
        protocols: this.options.protocols,
        route: slot.route,
        windowBytes: this.options.windowBytes,
        maxFrameBytes: 4096,
        run: this.options.run,
        secretKey: this.options.secretKey,
        signal: signal ?? AbortSignal.timeout(5000),
        onFrame: (link, frame) => { this.onFrame(link, frame) },
        onClose: (link, error) => { this.onLinkClosed(slot, link, error) }
      })
      slot.bytesBefore = 0
      slot.retryMs = 250
      this.pump()
    } catch (error) {
      this.options.logger.debug('link to %s via %s failed to open: %s', this.backup, slot.route.via ?? 'direct', (error as Error).message)
      this.scheduleReopen(slot)
      throw error
    } finally {
      slot.opening = false
    }
  }

  private scheduleReopen (slot: LinkSlot): void {
    if (this.stopped || slot.retryTimer != null) return
    slot.retryTimer = setTimeout(() => {
      slot.retryTimer = undefined
      this.openSlot(slot).catch(() => {})
    }, slot.retryMs)
    slot.retryMs = Math.min(slot.retryMs * 2, 5000)
  }

  /** A new flow-control window for every link (the network profile changed). */
  setWindow (bytes: number): void {
    this.options.windowBytes = bytes
    for (const slot of this.slots) if (slot.link != null) slot.link.windowBytes = bytes
    this.pump()
  }

  /** The smallest heartbeat round trip over the links that measured one. */
  minRttMs (): number | undefined {
    let best: number | undefined
    for (const slot of this.slots) {
      const rtt = slot.link?.minRttMs
      if (rtt != null && (best == null || rtt < best)) best = rtt
    }
    return best
  }

  get linksUp (): number {
    return this.slots.filter(slot => slot.link?.up === true).length
  }

  /** Queue an epoch's stripes for this backup (skipped while it waits for a full epoch). */
  enqueue (encoded: EncodedEpoch): void {
    if (this.stopped) return
    if (this.awaitingFull && !encoded.full) return
    if (encoded.full) this.awaitingFull = false
    this.epochs.set(encoded.epoch, { encoded, sentAt: Date.now() })
    this.backlogBytes += encoded.bytes
    for (const stripe of encoded.stripes) this.queue.push(stripe)
    this.pump()
  }

  /** Best effort: forget everything queued; the backup gets the next full epoch instead. */
  dropToResync (): void {
    this.queue = []
    this.epochs.clear()
    this.backlogBytes = 0
    this.awaitingFull = true
  }

  /**
   * Take back an epoch not yet acknowledged (a handover that timed out): its stripes not yet
   * sent stay here, and the backup, which may hold part of it, gets a full epoch next.
   */
  withdraw (epoch: number): void {
    if (this.ackedEpoch >= epoch) return
    this.dropToResync()
  }

  /** Whether the oldest unacknowledged epoch is a full one (a resync in progress). */
  get resyncing (): boolean {
    for (const pending of this.epochs.values()) return pending.encoded.full
    return this.awaitingFull
  }

  /** Time since the oldest unacknowledged checkpoint was taken (0 when all are acknowledged). */
  lagMs (now = Date.now()): number {
    for (const pending of this.epochs.values()) return now - pending.encoded.takenAt
    return 0
  }

  private pump (): void {
    if (this.stopped) return
    while (this.queue.length > 0) {
      if (this.sentThisTurn >= SEND_BYTES_PER_TURN) return
      const stripe = this.queue[0]
      if (!this.epochs.has(stripe.epoch)) {
        this.queue.shift()
        continue
      }
      let best: StripeLink | undefined
      for (const slot of this.slots) {
        const link = slot.link
        if (link == null || !link.fits(stripe.bytes) || link.needsDrain) continue
        if (best == null || link.inFlightBytes < best.inFlightBytes) best = link
      }
      if (best == null) return
      this.queue.shift()
      const link = best
      const slot = this.slots.find(candidate => candidate.link === link)
      slot?.meter.add(stripe.bytes)
      this.sentThisTurn += stripe.bytes
      this.nextTurn ??= setImmediate(() => {
        this.nextTurn = undefined
        this.sentThisTurn = 0
        this.pump()
      })
      link.sendStripe(stripe).then(() => { this.pump() }, () => {})
    }
  }

  private onFrame (link: StripeLink, frame: ReplicationFrame): void {
    switch (frame.kind) {
      case 'stripe-receipt':
        if (frame.vmId !== this.options.vmId) return
        link.receipt(frame.epoch, frame.stripeIndex)
        this.pump()
        return
      case 'epoch-applied': {
        if (frame.vmId !== this.options.vmId || frame.epoch <= this.ackedEpoch) return
        const pending = this.epochs.get(frame.epoch)
        if (pending == null) return
        if (!Buffer.from(pending.encoded.contentHash).equals(frame.contentHash)) {
          this.options.logger.error('backup %s applied epoch %d with a different content hash', this.backup, frame.epoch)
          this.options.onMismatch(this.backup, frame.epoch)
          return
        }
        for (const [epoch, other] of this.epochs) {
          if (epoch > frame.epoch) break
          this.backlogBytes -= other.encoded.bytes
          this.epochs.delete(epoch)
        }
        const now = Date.now()
        this.ackedEpoch = frame.epoch
        this.lastAckAt = now
        this.options.onAck({
          backup: this.backup,
          epoch: frame.epoch,
          guestCounter: frame.guestCounter,
          contentHash: frame.contentHash,
          memoryHash: frame.memoryHash,
          lagMs: now - pending.encoded.takenAt
        })
        return
      }
      case 'resumed':
        if (frame.vmId === this.options.vmId) this.options.onResumed(this.backup, frame.epoch)
        return
      case 'heartbeat':
        if (frame.vmId !== this.options.vmId) return
        link.echoed(frame.sentAt)
        this.options.onEcho?.(this.backup, frame.epoch)
        return
      default:
        link.abort(new Error(`unexpected ${frame.kind} frame from backup`))
    }
  }

  private onLinkClosed (slot: LinkSlot, link: StripeLink, error?: Error): void {
    if (slot.link === link) slot.link = undefined
    const stripes = link.takeUnreceipted().filter(stripe => this.epochs.has(stripe.epoch))
    if (this.stopped) return
    this.options.logger.warn('link to %s via %s closed%s; re-sending %d stripes', this.backup, slot.route.via ?? 'direct', error != null ? `: ${error.message}` : '', stripes.length)
    if (stripes.length > 0) {
      this.resentStripes += stripes.length
      this.queue = [...stripes, ...this.queue].sort(compareStripes)
    }
    this.scheduleReopen(slot)
    this.pump()
  }

  heartbeat (epoch: number): void {
    for (const slot of this.slots) slot.link?.heartbeat(this.options.vmId, epoch)
  }

  status (now = Date.now()): BackupStatus {
    return {
      peerId: this.backup,
      ackedEpoch: this.ackedEpoch,
      lagMs: this.lagMs(now),
      backlogBytes: this.backlogBytes,
      resyncing: this.resyncing,
      resentStripes: this.resentStripes,
      links: this.slots.map(slot => ({
        via: slot.route.via ?? 'direct',
        up: slot.link?.up === true,
        rttMs: slot.link?.rttMs,
        bytesPerS: slot.meter.perSecond(now),
        bytesSent: slot.meter.total,
        inFlightBytes: slot.link?.inFlightBytes ?? 0,
        maxInFlightBytes: slot.link?.maxInFlightBytes ?? 0,
        windowBytes: this.options.windowBytes
      }))
    }
  }

  /** Acknowledged bytes per second are what the links delivered. */
  bytesPerS (now = Date.now()): number {
    let total = 0
    for (const slot of this.slots) total += slot.meter.perSecond(now)
    return total
  }

  /** Ask the backup to drop its replica (on any link that is up), then close. */
  async release (): Promise<void> {
    this.queue = []
    this.epochs.clear()
    this.backlogBytes = 0
    await Promise.allSettled(this.slots.map(async slot => { await slot.link?.release(this.options.vmId) }))
    await this.close()
  }

  async close (): Promise<void> {
    this.stopped = true
    if (this.nextTurn != null) clearImmediate(this.nextTurn)
    this.nextTurn = undefined
    for (const slot of this.slots) {
      if (slot.retryTimer != null) clearTimeout(slot.retryTimer)
      slot.retryTimer = undefined
    }
    await Promise.all(this.slots.map(async slot => { await slot.link?.close() }))
  }
}
