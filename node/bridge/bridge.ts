// One running bridge: the daemon's own host in network A and a second libp2p host, with its
// own key and certificate, in network B. Only the allow-listed application topics are
// forwarded, both ways, each message re-wrapped with its origin and signed by the bridge's
// key in the network it enters, and rate-limited per direction. The two hosts share nothing
// else: B's DHT, membership, roster and other topics stay in B, and no node of one network
// ever gets a connection to a node of the other.
import { multiaddr } from '@multiformats/multiaddr'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import { createHost, type MyceliumHost } from '../host/index.ts'
import { topicPrefix, type MembershipPolicy, type CertificateChain } from '../membership/index.ts'
import { encodeBridgedMessage, isBridgedMessage } from '../gossip/index.ts'
import { RevocationList, RevocationExchange } from '../revocation/index.ts'
import { HomeError, type Home, type NetworkInfo } from '../home/index.ts'
import type { Logger } from '../log/index.ts'
import { TokenBucket } from './token-bucket.ts'
import type { BridgeRecord } from './bridge-book.ts'

const RECONNECT_INTERVAL_MS = 5_000

/** One side of the bridge: a host in one network and the key that signs what enters it. */
export interface BridgeSide {
  networkId: string
  host: () => MyceliumHost
  secretKey: Uint8Array
}

export interface DirectionStats {
  forwarded: number
  dropped: number
}

export interface BridgeView extends BridgeRecord {
  /** the bridge's peer id in the other network */
  peerId: string
  /** members of the other network the bridge is connected to */
  peers: number
  /** this network → the other */
  out: DirectionStats
  /** the other network → this one */
  in: DirectionStats
  running: boolean
}

export class Bridge {
  readonly record: BridgeRecord
  private readonly home: Home
  private readonly local: BridgeSide
  private readonly log: Logger
  private remote?: MyceliumHost
  private remoteKey?: Uint8Array
  private revocations?: RevocationExchange
  private readonly verified = new Set<string>()
  private readonly stats = { out: { forwarded: 0, dropped: 0 }, in: { forwarded: 0, dropped: 0 } }
  private readonly outBucket: TokenBucket
  private readonly inBucket: TokenBucket
  private stopped = false
  private timer?: NodeJS.Timeout
  private readonly onLocal = (evt: CustomEvent<Message>): void => { this.forward(evt.detail, 'out') }
  private readonly onRemote = (evt: CustomEvent<Message>): void => { this.forward(evt.detail, 'in') }

  constructor (options: { record: BridgeRecord, home: Home, local: BridgeSide, log: Logger }) {
    this.record = options.record
    this.home = options.home
    this.local = options.local
    this.log = options.log.child({ bridge: options.record.id, to: options.record.networkId })
    this.outBucket = new TokenBucket(options.record.ratePerS)
    this.inBucket = new TokenBucket(options.record.ratePerS)
  }

  async start (): Promise<void> {
    const network = this.home.loadNetwork()
    const chain = this.home.loadChain()
    if (network === undefined || chain === undefined || network.networkId !== this.record.networkId) throw new HomeError(`bridge ${this.record.id}: its membership in ${this.record.networkId} is missing from ${this.home.dir}; remove it and add it again with a new invite`)
    const privateKey = this.home.loadNodeKey()
    this.remoteKey = privateKey.raw.subarray(0, 32)
    const list = new RevocationList(this.home, network)
    const remote = await createHost({
      privateKey,
      networkId: network.networkId,
      // the bridge only dials out: it is a member of B, not one of B's addresses
      listen: [],
      bootstrap: [],
      membership: this.membershipPolicy(network, chain, list),
      isVerified: (peer) => this.verified.has(peer.toString()),
      isRevoked: (peerId) => list.has(peerId),
      relayServer: false
    })
    await remote.start()
    if (this.stopped) { await remote.stop(); return }
    this.remote = remote
    this.revocations = new RevocationExchange({ host: remote, networkId: network.networkId, rootPublicKey: network.rootPublicKey, list, log: this.log })
    await this.revocations.start()

    const localPubsub = this.local.host().services.pubsub
    localPubsub.addEventListener('message', this.onLocal)
    remote.services.pubsub.addEventListener('message', this.onRemote)
    for (const topic of this.record.topics) {
      localPubsub.subscribe(`${topicPrefix(this.local.networkId)}/app/${topic}`)
      remote.services.pubsub.subscribe(`${topicPrefix(network.networkId)}/app/${topic}`)
    }
    this.timer = setInterval(() => { void this.reconnect() }, RECONNECT_INTERVAL_MS)
    this.timer.unref()
    await this.reconnect()
    this.log.info({ topics: this.record.topics, ratePerS: this.record.ratePerS, peerId: remote.peerId.toString() }, 'bridge running')
  }

  private membershipPolicy (network: NetworkInfo, chain: CertificateChain, list: RevocationList): MembershipPolicy {
    return {
      networkId: network.networkId,
      rootPublicKey: network.rootPublicKey,
      credentials: () => ({ kind: 'member', chain }),
      isRevoked: (peerId) => list.has(peerId),
      now: () => Date.now(),
      onVerified: (peerId) => { this.verified.add(peerId) },
      onRejected: (peerId, reason) => { this.log.warn({ peer: peerId, reason }, 'bridge refused a connection') }
    }
  }

  /** Stays connected to the other network: its bootstrap addresses and the members seen. */
  private async reconnect (): Promise<void> {
    const remote = this.remote
    if (remote === undefined || this.stopped || remote.getPeers().length > 0) return
    const dials: Array<Promise<unknown>> = []
    for (const addr of this.home.loadBootstrap()) dials.push(remote.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) }).catch(() => {}))
    for (const peer of await remote.peerStore.all()) {
      if (peer.id.equals(remote.peerId) || peer.addresses.length === 0) continue
      dials.push(remote.dial(peer.id, { signal: AbortSignal.timeout(10_000) }).catch(() => {}))
    }
    await Promise.all(dials)
  }

  private forward (msg: Message, direction: 'out' | 'in'): void {
    const remote = this.remote
    if (this.stopped || remote === undefined || msg.type !== 'signed') return
    const fromNetwork = direction === 'out' ? this.local.networkId : this.record.networkId
    const toNetwork = direction === 'out' ? this.record.networkId : this.local.networkId
    const prefix = `${topicPrefix(fromNetwork)}/app/`
    if (!msg.topic.startsWith(prefix)) return
    const topic = msg.topic.slice(prefix.length)
    // only allow-listed topics, and never a message another bridge already carried
    if (!this.record.topics.includes(topic) || isBridgedMessage(msg.data)) return
    const stats = this.stats[direction]
    if (!(direction === 'out' ? this.outBucket : this.inBucket).take()) { stats.dropped++; return }
    const target: MyceliumHost = direction === 'out' ? remote : this.local.host()
    const key = direction === 'out' ? this.remoteKey! : this.local.secretKey
    const data = encodeBridgedMessage({ topic, originNetwork: fromNetwork, originPeer: msg.from.toString(), data: msg.data, bridge: target.peerId.toString() }, key)
    stats.forwarded++
    void (target.services.pubsub as GossipSub).publish(`${topicPrefix(toNetwork)}/app/${topic}`, data).catch((err: Error) => {
      this.log.debug({ err: err.message, topic }, 'bridged publish failed')
    })
  }

  view (): BridgeView {
    return {
      ...this.record,
      peerId: this.remote?.peerId.toString() ?? '',
      peers: this.remote?.getPeers().filter(p => this.verified.has(p.toString())).length ?? 0,
      out: { ...this.stats.out },
      in: { ...this.stats.in },
      running: this.remote !== undefined && !this.stopped
    }
  }

  /** Stops forwarding at once (synchronously), then leaves the other network. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.timer)
    try { this.local.host().services.pubsub.removeEventListener('message', this.onLocal) } catch {}
    const remote = this.remote
    this.remote = undefined
    if (remote === undefined) return
    remote.services.pubsub.removeEventListener('message', this.onRemote)
    await this.revocations?.stop().catch(() => {})
    try {
      await remote.stop()
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'bridge host did not stop cleanly')
    }
  }
}
