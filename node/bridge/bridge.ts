// One running bridge: the daemon's own host in network A and a second libp2p host, with its
// own key and certificate, in network B. Only the allow-listed application topics are
// forwarded, both ways, each message re-wrapped with its origin and signed by the bridge's
// key in the network it enters, and rate-limited per direction; so are service records of
// the spores whose service name is allow-listed (re-signed by the bridge as its own service,
// labelled "bridged from <network>/<peer>"). The two hosts share nothing else: B's DHT,
// membership, roster and other topics and spore entries stay in B, and no node of one network
// ever gets a connection to a node of the other.
//
// A direction carries only while the bridge holds a grant from the administrator of the
// network it enters (bridge-grants.ts), presented with every bridged message, and a service
// record crosses only after the checks the spores would merge it by (service-gate.ts): the
// bridge re-signs what it carries, so nothing unchecked may get its signature.
import type { GossipSub, Message } from '@libp2p/gossipsub'
import { createHost, type MyceliumHost } from '../host/index.ts'
import { topicPrefix, protocolPrefix, MemberHost } from '../../membership/index.ts'
import { encodeBridgedMessage, isBridgedMessage } from '../gossip/index.ts'
import { peerIdOfPublicKey } from '../../crypto/index.ts'
import { RevocationList, RevocationExchange } from '../revocation/index.ts'
import { signEntry, signerOf, sporeProtocols, type Signer } from '../../spores/index.ts'
import { HomeError, type Home } from '../home/index.ts'
import type { Logger } from '../log/index.ts'
import { TokenBucket } from './token-bucket.ts'
import type { BridgeRecord } from './bridge-book.ts'
import { BridgeGrants } from './bridge-grants.ts'
import { ServiceRecordGate } from './service-gate.ts'

const BRIDGED_LABEL = 'bridged from '
const MAX_PROTOCOL_CHARS = 128

function latentTopic (networkId: string): string {
  return sporeProtocols({ protocolPrefix: protocolPrefix(networkId), topicPrefix: topicPrefix(networkId) }).gossip
}

/** One side of the bridge: a host in one network and the key that signs what enters it. */
export interface BridgeSide {
  networkId: string
  host: () => MyceliumHost
  secretKey: Uint8Array
  /** true while the peer is a member of this network (the origin check of records it sends) */
  isMember: (peerId: string) => boolean
}

export interface DirectionStats {
  /** gossip messages forwarded */
  forwarded: number
  /** service records forwarded */
  services: number
  /** messages and records over the rate limit */
  dropped: number
  /** messages and records not carried: the network they would enter has not granted the bridge */
  unattested: number
  /** service records not carried because they failed the spores' checks (signature, owner, membership, time, version) */
  refused: number
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
  /** until when each direction is granted by the administrator of the network it enters (absent: it carries nothing) */
  granted: { out?: number, in?: number }
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
  private members?: MemberHost
  private readonly stats: { out: DirectionStats, in: DirectionStats } = { out: { forwarded: 0, services: 0, dropped: 0, unattested: 0, refused: 0 }, in: { forwarded: 0, services: 0, dropped: 0, unattested: 0, refused: 0 } }
  readonly grants: BridgeGrants
  private readonly gates: { out: ServiceRecordGate, in: ServiceRecordGate }
  private remoteSigner?: Signer
  private readonly serviceSeq = new Map<string, number>()
  private readonly outBucket: TokenBucket
  private readonly inBucket: TokenBucket
  private stopped = false
  private readonly onLocal = (evt: CustomEvent<Message>): void => { this.forward(evt.detail, 'out') }
  private readonly onRemote = (evt: CustomEvent<Message>): void => { this.forward(evt.detail, 'in') }

  constructor (options: { record: BridgeRecord, home: Home, local: BridgeSide, log: Logger }) {
    this.record = options.record
    this.home = options.home
    this.local = options.local
    this.log = options.log.child({ bridge: options.record.id, to: options.record.networkId })
    this.outBucket = new TokenBucket(options.record.ratePerS)
    this.inBucket = new TokenBucket(options.record.ratePerS)
    this.grants = new BridgeGrants({
      localNetwork: this.local.networkId,
      remoteNetwork: this.record.networkId,
      localPeerId: () => this.local.host().peerId.toString(),
      remotePeerId: () => peerIdOfPublicKey(this.home.loadNodeKey().publicKey.raw)
    })
    // records going out come from this node's network, records coming in from the other
    this.gates = {
      out: new ServiceRecordGate({ isMember: (peerId) => this.local.isMember(peerId) }),
      in: new ServiceRecordGate({ isMember: (peerId) => this.members?.isVerified(peerId) === true })
    }
  }

  async start (): Promise<void> {
    const network = this.home.loadNetwork()
    const chain = this.home.loadChain()
    if (network === undefined || chain === undefined || network.networkId !== this.record.networkId) throw new HomeError(`bridge ${this.record.id}: its membership in ${this.record.networkId} is missing from ${this.home.dir}; remove it and add it again with a new invite`)
    const privateKey = this.home.loadNodeKey()
    this.remoteKey = privateKey.raw.subarray(0, 32)
    this.remoteSigner = signerOf(this.remoteKey)
    const list = new RevocationList(this.home, network)
    // B's rosters tell the bridge where B's members are; it dials them all, so every member
    // of B has verified the bridge's certificate itself and accepts the records it signs.
    // It tells B of no one: it is a guest there, not a path into B.
    const members = new MemberHost({
      networkId: network.networkId,
      rootPublicKey: network.rootPublicKey,
      credentials: () => ({ kind: 'member', chain }),
      isRevoked: (peerId) => list.has(peerId),
      presence: () => ({ role: 'bridge', addrs: [] }),
      shareRoster: false,
      dialLearned: true,
      redial: { bootstrap: () => this.home.loadBootstrap(), dialable: () => true },
      log: this.log
    })
    members.onRejected((r) => { this.log.warn({ peer: r.peerId, reason: r.reason, kind: r.kind }, 'bridge refused a connection') })
    this.members = members
    const remote = await createHost({
      privateKey,
      networkId: network.networkId,
      // the bridge only dials out: it is a member of B, not one of B's addresses
      listen: [],
      bootstrap: [],
      membership: members.policy,
      isVerified: (peer) => members.isVerified(peer.toString()),
      isRevoked: (peerId) => list.has(peerId),
      relayServer: false
    })
    await remote.start()
    if (this.stopped) { await remote.stop(); return }
    this.remote = remote
    this.revocations = new RevocationExchange({ host: remote, networkId: network.networkId, rootPublicKey: network.rootPublicKey, list, log: this.log })
    await this.revocations.start()

    await members.attach(remote)

    const localPubsub = this.local.host().services.pubsub
    localPubsub.addEventListener('message', this.onLocal)
    remote.services.pubsub.addEventListener('message', this.onRemote)
    for (const topic of this.record.topics) {
      localPubsub.subscribe(`${topicPrefix(this.local.networkId)}/app/${topic}`)
      remote.services.pubsub.subscribe(`${topicPrefix(network.networkId)}/app/${topic}`)
    }
    // this node's spores already listen on its own latent topic
    remote.services.pubsub.subscribe(latentTopic(network.networkId))
    this.log.info({ topics: this.record.topics, ratePerS: this.record.ratePerS, peerId: remote.peerId.toString() }, 'bridge running')
  }

  private forward (msg: Message, direction: 'out' | 'in'): void {
    const remote = this.remote
    if (this.stopped || remote === undefined || msg.type !== 'signed') return
    const fromNetwork = direction === 'out' ? this.local.networkId : this.record.networkId
    const toNetwork = direction === 'out' ? this.record.networkId : this.local.networkId
    if (msg.topic === latentTopic(fromNetwork)) { this.forwardService(msg.data, direction, fromNetwork, toNetwork); return }
    const prefix = `${topicPrefix(fromNetwork)}/app/`
    if (!msg.topic.startsWith(prefix)) return
    const topic = msg.topic.slice(prefix.length)
    // only allow-listed topics, and never a message another bridge already carried
    if (!this.record.topics.includes(topic) || isBridgedMessage(msg.data)) return
    const stats = this.stats[direction]
    const grant = this.grants.current(direction)
    if (grant === undefined) { stats.unattested++; return }
    if (!(direction === 'out' ? this.outBucket : this.inBucket).take()) { stats.dropped++; return }
    const target: MyceliumHost = direction === 'out' ? remote : this.local.host()
    const key = direction === 'out' ? this.remoteKey! : this.local.secretKey
    const data = encodeBridgedMessage({ topic, originNetwork: fromNetwork, originPeer: msg.from.toString(), data: msg.data, bridge: target.peerId.toString(), grant }, key)
    stats.forwarded++
    void (target.services.pubsub as GossipSub).publish(`${topicPrefix(toNetwork)}/app/${topic}`, data).catch((err: Error) => {
      this.log.debug({ err: err.message, topic }, 'bridged publish failed')
    })
  }

  /**
   * A service record of an allow-listed name enters the other network as the bridge's own
   * service record of that name (the spores accept a record only from its owner), labelled
   * with where it came from. Only a record that passes the spores' own checks in the network
   * it comes from crosses, once per version; records that already crossed a bridge never
   * cross again, and nothing crosses into a network that has not granted the bridge.
   */
  private forwardService (data: Uint8Array, direction: 'out' | 'in', fromNetwork: string, toNetwork: string): void {
    const signer = direction === 'out' ? this.remoteSigner! : signerOf(this.local.secretKey)
    // the bridge's own key in the network the record comes from: its records are not carried
    const self = direction === 'out' ? this.local.host().peerId.toString() : this.remoteSigner!.peerId
    const stats = this.stats[direction]
    const verdict = this.gates[direction].check(data, (r) => r.origin !== self && this.record.topics.includes(r.value.name) && r.value.protocol?.startsWith(BRIDGED_LABEL) !== true)
    if (!verdict.ok) {
      if (verdict.carried) { stats.refused++; this.log.debug({ direction, reason: verdict.reason }, 'service record refused by the bridge') }
      return
    }
    const entry = verdict.entry
    const value = entry.value
    if (this.grants.current(direction) === undefined) { stats.unattested++; return }
    if (!(direction === 'out' ? this.outBucket : this.inBucket).take()) { stats.dropped++; return }
    const key = `${signer.peerId}/${value.name}`
    const now = Date.now()
    const seq = Math.max(now, (this.serviceSeq.get(key) ?? 0) + 1)
    this.serviceSeq.set(key, seq)
    const protocol = `${BRIDGED_LABEL}${fromNetwork}/${entry.origin}${value.protocol !== undefined ? ` ${value.protocol}` : ''}`.slice(0, MAX_PROTOCOL_CHARS)
    let bridged
    try {
      bridged = signEntry(signer, { type: 'service', key, value: { name: value.name, endpoints: value.endpoints, protocol }, seq, issuedAt: now })
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'service record could not be bridged')
      return
    }
    stats.services++
    this.gates[direction].carry(entry)
    const target: MyceliumHost = direction === 'out' ? this.remote! : this.local.host()
    void (target.services.pubsub as GossipSub).publish(latentTopic(toNetwork), bridged.bytes).catch((err: Error) => {
      this.log.debug({ err: err.message }, 'bridged service record publish failed')
    })
  }

  view (): BridgeView {
    return {
      ...this.record,
      peerId: this.remote?.peerId.toString() ?? '',
      peers: this.members?.peers().length ?? 0,
      out: { ...this.stats.out },
      in: { ...this.stats.in },
      grants: this.grants.tokens(),
      granted: this.grants.view(),
      running: this.remote !== undefined && !this.stopped
    }
  }

  /** Stops forwarding at once (synchronously), then leaves the other network. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    try { this.local.host().services.pubsub.removeEventListener('message', this.onLocal) } catch {}
    const remote = this.remote
    this.remote = undefined
    if (remote === undefined) return
    remote.services.pubsub.removeEventListener('message', this.onRemote)
    await this.revocations?.stop().catch(() => {})
    await this.members?.detach().catch(() => {})
    try {
      await remote.stop()
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'bridge host did not stop cleanly')
    }
  }
}
