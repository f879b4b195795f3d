// The page's copy of the network's revocations: sclerotia hand their whole list to every peer
// that connects and gossip new ones; each is checked against the root key. A revoked peer is
// refused by the page's own handshake and hung up on (a direct WebRTC link to a revoked page
// included); a revocation naming this page ends its membership.
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import { decodeCanonical } from '../../crypto/index.ts'
import { protocolPrefix, topicPrefix } from '../../membership/index.ts'
// node/revocation/index.ts also holds the daemon's file-backed list (node:fs): the page takes
// the browser-safe codec from its own file; protocol and topic names follow the daemon's
import { decodeRevocation } from '../../membership/index.ts'
import type { HyphaeLibp2p } from './hyphae-node.ts'

const MAX_REVOCATIONS = 4096
const MAX_MESSAGE_BYTES = 1024 * 1024
const TIMEOUT_MS = 5_000

export class RevocationWatch {
  private readonly revoked = new Set<string>()
  private readonly options: { networkId: string, rootPublicKey: Uint8Array, self: string, onRevoked: (peerId: string) => void }
  private libp2p?: HyphaeLibp2p

  constructor (options: { networkId: string, rootPublicKey: Uint8Array, self: string, onRevoked: (peerId: string) => void }) {
    this.options = options
  }

  has (peerId: string): boolean {
    return this.revoked.has(peerId)
  }

  get topic (): string {
    return `${topicPrefix(this.options.networkId)}/revocations`
  }

  async start (libp2p: HyphaeLibp2p): Promise<void> {
    this.libp2p = libp2p
    libp2p.services.pubsub.topicValidators.set(this.topic, async (_peer, message) => {
      try {
        this.take([message.data])
      } catch {
        return 'reject' as any
      }
      // a hyphae learns revocations but leaves spreading them to the sclerotia
      return 'ignore' as any
    })
    libp2p.services.pubsub.subscribe(this.topic)
    await libp2p.handle(`${protocolPrefix(this.options.networkId)}/revocations/1.0.0`, (stream) => { void this.receive(stream) }, { runOnLimitedConnection: true })
  }

  stop (): void {
    this.libp2p?.services.pubsub.unsubscribe(this.topic)
    this.libp2p?.services.pubsub.topicValidators.delete(this.topic)
  }

  private async receive (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(TIMEOUT_MS)
    try {
      const raw = decodeCanonical((await lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES }).read({ signal })).subarray())
      if (!Array.isArray(raw) || raw.length > MAX_REVOCATIONS || !raw.every(r => r instanceof Uint8Array)) throw new Error('revocation list is malformed')
      for (const bytes of raw) {
        try { this.take([bytes]) } catch {}
      }
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  /** Revocations not kept because the list was full (shown in the page's event log by the client). */
  unstored = 0

  /** Checks and records revocations (throws on an invalid one) and acts on the new ones. */
  private take (encoded: Uint8Array[]): void {
    for (const bytes of encoded) {
      const revocation = decodeRevocation(bytes, this.options.networkId, this.options.rootPublicKey)
      if (this.revoked.has(revocation.peerId)) continue
      const self = revocation.peerId === this.options.self
      // one that can no longer matter (every certificate of the key expired) is not kept
      if (!self && revocation.until !== undefined && revocation.until <= Date.now()) continue
      // the page's own revocation is always acted on; past the cap others are counted, not kept
      if (!self && this.revoked.size >= MAX_REVOCATIONS) { this.unstored++; continue }
      this.revoked.add(revocation.peerId)
      this.options.onRevoked(revocation.peerId)
      if (revocation.peerId !== this.options.self) void this.libp2p?.hangUp(peerIdFromString(revocation.peerId)).catch(() => {})
    }
  }
}
