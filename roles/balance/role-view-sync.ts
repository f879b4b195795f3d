// Catch-up of the role view over one stream: a node hands a peer every signed advertisement it
// holds, verbatim. Advertisements are refreshed only every minute (advert-schedule.ts), so a
// node that joins, or whose partition heals, asks the first peer it meets that it does not know
// instead of waiting a refresh period; the rest of the time nobody asks (every peer is known),
// so this costs nothing idle. Each advertisement received is checked exactly as a gossiped one
// (signature, topic, seq, clock window) by the caller's `take`; the responder is trusted with
// nothing, and its frames are bounded in size and number.
import { lpStream } from '@libp2p/utils'
import type { PeerId, Stream } from '@libp2p/interface'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import { MAX_ADVERTISEMENT_BYTES } from './role-advertisement.ts'

/** Advertisements per frame; a view of up to 4,096 nodes goes in at most 16 frames. */
const PER_FRAME = 256
const MAX_FRAMES = 17
const MAX_FRAME_BYTES = PER_FRAME * (MAX_ADVERTISEMENT_BYTES + 8) + 64
const TIMEOUT_MS = 10_000

export class RoleViewSyncError extends Error {
  readonly name = 'RoleViewSyncError'
}

export interface ViewSyncHost {
  handle: (protocol: string, handler: (stream: Stream, connection: { remotePeer: PeerId }) => void, options?: { maxInboundStreams?: number }) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  dialProtocol: (peer: PeerId, protocol: string, options?: { signal?: AbortSignal }) => Promise<Stream>
}

/** The catch-up protocol's id under the roles topic, `/mycelium/<networkId>/roles/1/view`. */
export function viewSyncProtocol (topic: string): string {
  return `/${topic}/view`
}

export class RoleViewSync {
  private readonly host: ViewSyncHost
  private readonly protocol: string
  private readonly held: () => Uint8Array[]
  private readonly accepts: (peerId: string) => boolean

  /**
   * `held`: the signed advertisements to hand out (the view's and this node's own). `accepts`:
   * who may ask (verified members of the network; a peer still in its membership handshake, or a
   * stranger, learns nothing of the network's nodes, addresses and roles).
   */
  constructor (host: ViewSyncHost, protocol: string, held: () => Uint8Array[], accepts: (peerId: string) => boolean = () => true) {
    this.host = host
    this.protocol = protocol
    this.held = held
    this.accepts = accepts
  }

  async start (): Promise<void> {
    await this.host.handle(this.protocol, (stream, connection) => {
      if (!this.accepts(connection.remotePeer.toString())) {
        stream.abort(new RoleViewSyncError('not a verified member'))
        return
      }
      void this.serve(stream)
    }, { maxInboundStreams: 2 })
  }

  async stop (): Promise<void> {
    await this.host.unhandle(this.protocol)
  }

  private async serve (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(TIMEOUT_MS)
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
    try {
      const all = this.held().filter(b => b.length <= MAX_ADVERTISEMENT_BYTES).slice(0, PER_FRAME * (MAX_FRAMES - 1))
      for (let i = 0; i < all.length; i += PER_FRAME) await lp.write(encodeCanonical({ ads: all.slice(i, i + PER_FRAME) }), { signal })
      await lp.write(encodeCanonical({ ads: [], end: true }), { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  /** The peer's advertisements, unchecked bytes: the caller verifies each as it would a gossiped one. */
  async fetch (peer: PeerId, signal?: AbortSignal): Promise<Uint8Array[]> {
    const s = signal === undefined ? AbortSignal.timeout(TIMEOUT_MS) : AbortSignal.any([signal, AbortSignal.timeout(TIMEOUT_MS)])
    const stream = await this.host.dialProtocol(peer, this.protocol, { signal: s })
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
    const out: Uint8Array[] = []
    try {
      for (let frames = 0; ; frames++) {
        if (frames >= MAX_FRAMES) throw new RoleViewSyncError('too many frames')
        const frame = decodeCanonical((await lp.read({ signal: s })).subarray()) as { ads?: unknown, end?: unknown }
        if (typeof frame !== 'object' || frame === null || !Array.isArray(frame.ads) || frame.ads.length > PER_FRAME) throw new RoleViewSyncError('bad frame')
        for (const ad of frame.ads) {
          if (!(ad instanceof Uint8Array) || ad.length > MAX_ADVERTISEMENT_BYTES) throw new RoleViewSyncError('bad advertisement in frame')
          out.push(ad)
        }
        if (frame.end === true) break
      }
      await stream.close({ signal: s })
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
    return out
  }
}
