// The rhizomorph side of a forwarded link: a primary opens a stream naming a backup; the
// rhizomorph opens a stripe stream to that backup, tells it whose stripes follow (the origin it
// authenticated), answers the primary, and splices the two streams with bounded buffers.
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, Stream } from '@libp2p/interface'
import { ByteReader, ByteWriter } from './bytes.ts'
import { ForwardRefusedError, InvalidFrameError } from './errors.ts'
import { readSingleFrame, spliceStreams, writeSingleFrame } from './forward-pipe.ts'
import { replicationProtocols, silentLogger } from './protocols.ts'
import type { ReplicationLogger, ReplicationNode } from './protocols.ts'

const FORWARD_VERSION = 1
export const STATUS_OK = 0
const STATUS_BUSY = 1
const STATUS_BAD_REQUEST = 2
const STATUS_UNREACHABLE = 3
const MAX_REQUEST_BYTES = 1024

export interface StripeForwarderOptions {
  /** Protocol prefix carrying the network id, e.g. `/mycelium/<networkId>`. */
  protocolPrefix: string
  /** Forwards accepted at the same time; more are refused as busy. */
  maxForwards?: number
  /** Bound on bytes buffered per direction of one forward. */
  bufferBytes?: number
  /** How long to wait for the backup's stream. */
  dialTimeoutMs?: number
  logger?: ReplicationLogger
}

export interface StripeForwarderStats {
  active: number
  accepted: number
  refused: number
  bytesForwarded: number
}

export function encodeForwardRequest (target: string): Uint8Array {
  return new ByteWriter().u8(FORWARD_VERSION).text(target).finish()
}

export function decodeForwardRequest (body: Uint8Array): string {
  const reader = new ByteReader(body)
  const version = reader.u8('version')
  if (version !== FORWARD_VERSION) throw new InvalidFrameError(`unsupported forward version ${version}`)
  const target = reader.text(256, 'target peer id')
  reader.end('forward request')
  return target
}

/** A rhizomorph's answer to a forward request (STATUS_OK and an empty reason when accepted). */
export function encodeForwardAnswer (status: number, reason: string): Uint8Array {
  return new ByteWriter().u8(status).text(reason).finish()
}

/** Read the rhizomorph's answer on the primary's side; throws ForwardRefusedError unless accepted. */
export async function awaitForwardAnswer (stream: Stream, signal?: AbortSignal): Promise<void> {
  const reader = new ByteReader(await readSingleFrame(stream, MAX_REQUEST_BYTES, signal))
  const status = reader.u8('status')
  const reason = reader.text(MAX_REQUEST_BYTES, 'reason')
  reader.end('forward answer')
  if (status !== STATUS_OK) throw new ForwardRefusedError(reason)
}

/** A rhizomorph's forwarding service: `start()` registers the protocol handler on the node. */
export class StripeForwarder {
  private readonly node: ReplicationNode
  private readonly protocols: ReturnType<typeof replicationProtocols>
  private readonly maxForwards: number
  private readonly bufferBytes: number
  private readonly dialTimeoutMs: number
  private readonly logger: ReplicationLogger
  private readonly streams = new Set<Stream>()
  private readonly statsValue: StripeForwarderStats = { active: 0, accepted: 0, refused: 0, bytesForwarded: 0 }

  constructor (node: ReplicationNode, options: StripeForwarderOptions) {
    this.node = node
    this.protocols = replicationProtocols(options.protocolPrefix)
    this.maxForwards = options.maxForwards ?? 16
    this.bufferBytes = options.bufferBytes ?? 4 * 1024 * 1024
    this.dialTimeoutMs = options.dialTimeoutMs ?? 5000
    this.logger = options.logger ?? silentLogger
  }

  async start (): Promise<void> {
    await this.node.handle(this.protocols.forward, (stream, connection) => {
      this.forward(stream, connection).catch((error: Error) => {
        this.logger.debug('forward ended: %s', error.message)
      })
    }, { maxInboundStreams: this.maxForwards + 4 })
  }

  async stop (): Promise<void> {
    await this.node.unhandle(this.protocols.forward)
    for (const stream of this.streams) stream.abort(new Error('forwarder stopped'))
    this.streams.clear()
  }

  stats (): StripeForwarderStats {
    return { ...this.statsValue }
  }

  private refuse (stream: Stream, status: number, reason: string): void {
    this.statsValue.refused++
    writeSingleFrame(stream, encodeForwardAnswer(status, reason))
    stream.close().catch(() => {})
  }

  private async forward (inbound: Stream, connection: Connection): Promise<void> {
    let target: string
    try {
      target = decodeForwardRequest(await readSingleFrame(inbound, MAX_REQUEST_BYTES, AbortSignal.timeout(this.dialTimeoutMs)))
    } catch (error) {
      this.refuse(inbound, STATUS_BAD_REQUEST, (error as Error).message)
      return
    }
    if (this.statsValue.active >= this.maxForwards) {
      this.refuse(inbound, STATUS_BUSY, `already forwarding ${this.statsValue.active} streams`)
      return
    }
    let targetPeer
    try {
      targetPeer = peerIdFromString(target)
    } catch {
      this.refuse(inbound, STATUS_BAD_REQUEST, 'target is not a peer id')
      return
    }
    if (targetPeer.equals(this.node.peerId) || targetPeer.equals(connection.remotePeer)) {
      this.refuse(inbound, STATUS_BAD_REQUEST, 'target is this node or the requester')
      return
    }
    this.statsValue.active++
    let outbound: Stream | undefined
    try {
      try {
        outbound = await this.node.dialProtocol(targetPeer, this.protocols.stripe, { signal: AbortSignal.timeout(this.dialTimeoutMs) })
      } catch (error) {
        this.refuse(inbound, STATUS_UNREACHABLE, `cannot reach ${target}: ${(error as Error).message}`)
        return
      }
      this.statsValue.accepted++
      this.streams.add(inbound)
      this.streams.add(outbound)
      writeSingleFrame(inbound, encodeForwardAnswer(STATUS_OK, ''))
      await spliceStreams(inbound, outbound, this.bufferBytes, (count) => { this.statsValue.bytesForwarded += count })
    } finally {
      this.statsValue.active--
      this.streams.delete(inbound)
      if (outbound != null) this.streams.delete(outbound)
    }
  }
}

/** Factory in the js-libp2p style: the daemon passes its node and the network's prefix. */
export function stripeForwarder (options: StripeForwarderOptions): (node: ReplicationNode) => StripeForwarder {
  return (node) => new StripeForwarder(node, options)
}
