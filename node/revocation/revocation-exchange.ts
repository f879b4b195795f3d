// Spreads revocations through one network: a new revocation is published on the network's
// revocation topic, and two members that connect hand each other their whole list, so a
// node that was offline or joined later still learns every revocation. A peer named in a
// revocation is hung up on at once; the membership policy refuses it from then on.
import { lpStream } from '@libp2p/utils'
import type { Libp2p, Stream, PeerId } from '@libp2p/interface'
import type { GossipSub, TopicValidatorResult } from '@libp2p/gossipsub'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import { protocolPrefix, topicPrefix } from '../../membership/index.ts'
import type { Logger } from '../log/index.ts'
import { encodeRevocation, decodeRevocation, type Revocation } from '../../membership/index.ts'
import { MAX_REVOCATIONS, type RevocationList } from './revocation-list.ts'

const MAX_MESSAGE_BYTES = 1024 * 1024
const EXCHANGE_TIMEOUT_MS = 5_000

export function revocationTopic (networkId: string): string {
  return `${topicPrefix(networkId)}/revocations`
}

export function revocationProtocol (networkId: string): string {
  return `${protocolPrefix(networkId)}/revocations/1.0.0`
}

export interface RevocationExchangeOptions {
  host: Libp2p<{ pubsub: GossipSub }>
  networkId: string
  rootPublicKey: Uint8Array
  list: RevocationList
  log: Logger
}

export class RevocationExchange {
  private readonly options: RevocationExchangeOptions
  private readonly topic: string
  private readonly protocol: string
  private readonly onConnect = (evt: CustomEvent<PeerId>): void => { void this.push(evt.detail) }

  constructor (options: RevocationExchangeOptions) {
    this.options = options
    this.topic = revocationTopic(options.networkId)
    this.protocol = revocationProtocol(options.networkId)
  }

  async start (): Promise<void> {
    const { host } = this.options
    host.services.pubsub.topicValidators.set(this.topic, (_peer, message) => {
      // invalid revocations are rejected (and not forwarded); known ones are ignored
      try {
        decodeRevocation(message.data, this.options.networkId, this.options.rootPublicKey)
      } catch {
        return 'reject' as TopicValidatorResult
      }
      return (this.take([message.data]) > 0 ? 'accept' : 'ignore') as TopicValidatorResult
    })
    host.services.pubsub.subscribe(this.topic)
    await host.handle(this.protocol, (stream) => { void this.receive(stream) }, { runOnLimitedConnection: true })
    host.addEventListener('peer:connect', this.onConnect)
    for (const peer of host.getPeers()) void this.push(peer)
  }

  async stop (): Promise<void> {
    const { host } = this.options
    host.removeEventListener('peer:connect', this.onConnect)
    host.services.pubsub.topicValidators.delete(this.topic)
    try { host.services.pubsub.unsubscribe(this.topic) } catch {}
    await host.unhandle(this.protocol).catch(() => {})
  }

  /** Publishes a revocation this node has just signed (or imported) and acts on it. */
  async announce (revocation: Revocation): Promise<void> {
    const bytes = encodeRevocation(revocation)
    this.take([bytes])
    try {
      await this.options.host.services.pubsub.publish(this.topic, bytes)
    } catch (err) {
      this.options.log.warn({ err: (err as Error).message }, 'could not publish the revocation (it spreads on the next connections)')
    }
  }

  /** Merges revocations and hangs up on every connected peer they name; returns how many were new. */
  private take (encoded: Uint8Array[]): number {
    const refusedBefore = this.options.list.refused
    const added = this.options.list.merge(encoded)
    const refused = this.options.list.refused - refusedBefore
    // a full list must never drop a revocation quietly: the operator has to act (see README)
    if (refused > 0) this.options.log.error({ refused, max: MAX_REVOCATIONS }, 'revocation list is full: revocations of the network administrator were not stored, so those members are not refused by this node')
    const self = this.options.host.peerId.toString()
    for (const r of added) {
      if (r.peerId === self) this.options.log.error({ revokedAt: r.revokedAt }, 'this node was revoked by the network administrator: every member refuses it now; join again with a new invite in a new home')
      else this.options.log.warn({ peer: r.peerId, revokedAt: r.revokedAt }, 'member revoked by the network administrator')
    }
    this.disconnectRevoked()
    return added.length
  }

  private disconnectRevoked (): void {
    const { host, list } = this.options
    for (const peer of host.getPeers()) {
      if (!list.has(peer.toString())) continue
      void host.hangUp(peer).catch(() => {})
    }
  }

  private async push (peer: PeerId): Promise<void> {
    const { host, list } = this.options
    if (list.has(peer.toString())) { void host.hangUp(peer).catch(() => {}); return }
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    let stream: Stream | undefined
    try {
      stream = await host.dialProtocol(peer, this.protocol, { signal, runOnLimitedConnection: true })
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      await lp.write(encodeCanonical(list.encoded().slice(0, MAX_REVOCATIONS)), { signal })
      // the answer is the peer's own list: a node whose handler was not registered yet when
      // the peer connected (features start after the host) still learns it this way
      this.take(decodeList((await lp.read({ signal })).subarray()))
      await stream.close({ signal })
    } catch (err) {
      this.options.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'revocation exchange failed')
      stream?.abort(err as Error)
    }
  }

  private async receive (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      const theirs = decodeList((await lp.read({ signal })).subarray())
      await lp.write(encodeCanonical(this.options.list.encoded().slice(0, MAX_REVOCATIONS)), { signal })
      this.take(theirs)
      await stream.close({ signal })
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'revocation exchange (inbound) failed')
      stream.abort(err as Error)
    }
  }
}

function decodeList (bytes: Uint8Array): Uint8Array[] {
  const raw = decodeCanonical(bytes)
  if (!Array.isArray(raw) || raw.length > MAX_REVOCATIONS || !raw.every(r => r instanceof Uint8Array)) throw new Error('revocation list is malformed')
  return raw as Uint8Array[]
}
