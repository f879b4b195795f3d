// One link from a primary to a backup: a stripe stream, direct or through a rhizomorph's
// forwarder. Flow control: at most `windowBytes` of stripes may be sent and not yet receipted
// by the backup; the stream's own backpressure (drain) applies underneath.
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { InvalidFrameError, LinkClosedError } from './errors.ts'
import { FrameChannel } from './frame-channel.ts'
import { decodeFrame, encodeHeartbeat, encodeOrigin, encodeRelease } from './frames.ts'
import type { EncodedStripe, ReplicationFrame } from './frames.ts'
import { encodeForwardRequest, awaitForwardAnswer } from './stripe-forwarder.ts'
import { readSingleFrame, writeSingleFrame } from './forward-pipe.ts'
import type { ReplicationNode, ReplicationProtocols } from './protocols.ts'
import { deriveLinkKeys, FrameOpener, FrameSealer, SEAL_NONCE_BYTES } from './link-seal.ts'
import type { LinkKeys } from './link-seal.ts'

/** Where a link goes: to `backup`, through rhizomorph `via` or directly when `via` is absent. */
export interface LinkRoute {
  backup: string
  via?: string
}

export interface StripeLinkOptions {
  node: ReplicationNode
  protocols: ReplicationProtocols
  route: LinkRoute
  windowBytes: number
  maxFrameBytes: number
  /** The replication run this link belongs to (see OriginFrame). */
  run?: number
  /**
   * This node's Ed25519 secret (32 bytes): seals a forwarded link end to end. A direct link is
   * not sealed again: its noise session already runs between primary and backup.
   */
  secretKey?: Uint8Array
  onFrame: (link: StripeLink, frame: ReplicationFrame) => void
  onClose: (link: StripeLink, error?: Error) => void
  signal?: AbortSignal
}

/** Control frames from a backup are small; anything bigger on a primary's link is an error. */
const MAX_CONTROL_FRAME_BYTES = 4096
/** A backup that does not answer a sealed origin with its nonce by then is not coming. */
const NONCE_TIMEOUT_MS = 5000

export class StripeLink {
  readonly route: LinkRoute
  /** Changes when the network profile changes. */
  windowBytes: number
  private readonly channel: FrameChannel
  /** Stripes sent on this link that the backup has not receipted yet, by `epoch:stripe`. */
  readonly inFlight = new Map<string, { stripe: EncodedStripe, sentAt: number }>()
  inFlightBytes = 0
  maxInFlightBytes = 0
  bytesSent = 0
  /** Smoothed round trip of heartbeats on this link, queueing behind stripes included (ms). */
  rttMs?: number
  /** Smallest heartbeat round trip seen: the link's latency with nothing queued (ms). */
  minRttMs?: number
  readonly openedAt = Date.now()
  closedAt?: number

  private constructor (route: LinkRoute, windowBytes: number, channel: FrameChannel) {
    this.route = route
    this.windowBytes = windowBytes
    this.channel = channel
  }

  static async open (options: StripeLinkOptions): Promise<StripeLink> {
    const { node, protocols, route, signal } = options
    const backupPeer: PeerId = peerIdFromString(route.backup)
    let stream
    if (route.via == null) {
      stream = await node.dialProtocol(backupPeer, protocols.stripe, { signal })
    } else {
      stream = await node.dialProtocol(peerIdFromString(route.via), protocols.forward, { signal })
      try {
        writeSingleFrame(stream, encodeForwardRequest(route.backup))
        await awaitForwardAnswer(stream, signal)
      } catch (error) {
        stream.abort(error as Error)
        throw error
      }
    }
    const self = node.peerId.toString()
    const sealed = options.secretKey != null && route.via != null
    const nonce = sealed ? new Uint8Array(randomBytes(SEAL_NONCE_BYTES)) : new Uint8Array(0)
    writeSingleFrame(stream, encodeOrigin({ peerId: self, run: options.run ?? 0, salt: nonce }))
    let keys: LinkKeys | undefined
    if (sealed && options.secretKey != null) {
      // Nothing sealed leaves before the backup's nonce is in: the keys depend on it.
      try {
        const answer = decodeFrame(await readSingleFrame(stream, MAX_CONTROL_FRAME_BYTES, signal ?? AbortSignal.timeout(NONCE_TIMEOUT_MS)))
        if (answer.kind !== 'link-nonce') throw new InvalidFrameError(`backup answered the origin with ${answer.kind}, expected link-nonce`)
        keys = deriveLinkKeys(options.secretKey, route.backup, self, route.backup, nonce, answer.nonce)
      } catch (error) {
        stream.abort(error as Error)
        throw error
      }
    }
    let link: StripeLink | undefined
    const pending: ReplicationFrame[] = []
    const channel = new FrameChannel(stream, {
      maxFrameBytes: Math.min(options.maxFrameBytes, MAX_CONTROL_FRAME_BYTES),
      onFrame: (body) => {
        const frame = decodeFrame(body)
        if (link == null) pending.push(frame)
        else options.onFrame(link, frame)
      },
      onClose: (error) => {
        if (link != null) {
          link.closedAt = Date.now()
          options.onClose(link, error)
        }
      }
    })
    if (keys != null) channel.seal(new FrameSealer(keys.toBackup), new FrameOpener(keys.toPrimary))
    link = new StripeLink(route, options.windowBytes, channel)
    if (!channel.isOpen) throw new LinkClosedError('link closed while opening')
    for (const frame of pending) options.onFrame(link, frame)
    return link
  }

  get up (): boolean {
    return this.channel.isOpen
  }

  /** The stream's buffer is full: wait for it to drain before sending more. */
  get needsDrain (): boolean {
    return this.channel.stream.writableNeedsDrain
  }

  get label (): string {
    return this.route.via ?? 'direct'
  }

  /** Whether a stripe of `bytes` fits the window now (an idle link always takes one stripe). */
  fits (bytes: number): boolean {
    return this.up && (this.inFlightBytes === 0 || this.inFlightBytes + bytes <= this.windowBytes)
  }

  async sendStripe (stripe: EncodedStripe): Promise<void> {
    const key = `${stripe.epoch}:${stripe.stripeIndex}`
    this.inFlight.set(key, { stripe, sentAt: Date.now() })
    this.inFlightBytes += stripe.bytes
    if (this.inFlightBytes > this.maxInFlightBytes) this.maxInFlightBytes = this.inFlightBytes
    this.bytesSent += stripe.bytes
    await this.channel.send(stripe.chunks)
  }

  /** The backup holds the stripe: return its credit. Returns whether it was in flight here. */
  receipt (epoch: number, stripeIndex: number): boolean {
    const key = `${epoch}:${stripeIndex}`
    const entry = this.inFlight.get(key)
    if (entry == null) return false
    this.inFlight.delete(key)
    this.inFlightBytes -= entry.stripe.bytes
    return true
  }

  /** Take back every stripe still in flight (the link failed): they go out again on other links. */
  takeUnreceipted (): EncodedStripe[] {
    const stripes = [...this.inFlight.values()].map(entry => entry.stripe)
    this.inFlight.clear()
    this.inFlightBytes = 0
    return stripes
  }

  heartbeat (vmId: string, epoch: number): void {
    if (!this.up || this.channel.stream.writableNeedsDrain) return
    this.channel.send(encodeHeartbeat(vmId, epoch, performance.now())).catch(() => {})
  }

  /** A heartbeat came back from the backup. */
  echoed (sentAt: number): void {
    const sample = performance.now() - sentAt
    if (!(sample >= 0)) return
    this.rttMs = this.rttMs == null ? sample : this.rttMs * 0.8 + sample * 0.2
    this.minRttMs = this.minRttMs == null ? sample : Math.min(this.minRttMs, sample)
  }

  /** Tell the backup to drop its replica of `vmId`; resolves once the frame is handed to the stream. */
  async release (vmId: string): Promise<void> {
    if (!this.up) return
    await this.channel.send(encodeRelease(vmId))
  }

  abort (error: Error): void {
    this.channel.abort(error)
  }

  async close (): Promise<void> {
    await this.channel.close()
  }
}
