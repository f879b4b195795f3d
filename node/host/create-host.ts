// Assembles the libp2p host from small parts, the way js-libp2p is meant to be used. The
// membership handshake replaces plain noise, and the connection gater admits only peers
// that passed it, so nothing (identify, gossip, DHT, relay) reaches a non-member.
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { circuitRelayTransport, circuitRelayServer, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { yamux } from '@libp2p/yamux'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { bootstrap } from '@libp2p/bootstrap'
import type { PrivateKey, PeerId } from '@libp2p/interface'
import { linkLiveness } from './link-liveness.ts'
import { skipRecordedProtocolMerges } from './peer-store-protocols.ts'
import { gossipScoreParams, gossipScoreThresholds } from './gossip-score.ts'
import { gossipFastMessageId } from './gossip-message-id.ts'
import { membershipEncrypter, protocolPrefix, keepGossipStreams, ANY_NETWORK_MEMBERSHIP_PROTOCOL, type MembershipPolicy } from '../../membership/index.ts'

/** Open connections a host accepts before refusing inbound ones (libp2p's connection manager). */
export const MAX_CONNECTIONS = 384

export interface HostServices {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  relay?: CircuitRelayService
  [name: string]: unknown
}

export type MyceliumHost = Libp2p<HostServices>

export interface HostOptions {
  privateKey: PrivateKey
  networkId: string
  listen: string[]
  bootstrap: string[]
  membership: MembershipPolicy
  /** Peers that passed the membership handshake (checked again once the connection is upgraded). */
  isVerified: (peerId: PeerId) => boolean
  isRevoked: (peerId: string) => boolean
  relayServer: boolean
  /** Connection limits (default MAX_CONNECTIONS). */
  limits?: { maxConnections?: number }
  /** Extra services (spores, roles, …) added by the daemon; each is a js-libp2p service factory. */
  services?: Record<string, (components: any) => unknown>
}

export async function createHost (options: HostOptions): Promise<MyceliumHost> {
  const prefix = protocolPrefix(options.networkId)
  const services: Record<string, (components: any) => unknown> = {
    identify: identify(),
    ping: ping(),
    liveness: linkLiveness(),
    dht: kadDHT({ protocol: `${prefix}/kad/1.0.0`, clientMode: false, peerInfoMapper: passthroughMapper }),
    // scoring: only proven-invalid messages on validated topics cost a peer (gossip-score.ts);
    // copies of a message already delivered are dropped before their signature is checked
    pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false, globalSignaturePolicy: 'StrictSign', fastMsgIdFn: gossipFastMessageId, scoreParams: gossipScoreParams(options.networkId), scoreThresholds: gossipScoreThresholds }),
    ...options.services
  }
  // a relay service given by the daemon (the roles' switchable relay) replaces the fixed one
  if (options.relayServer && options.services?.relay === undefined) services.relay = circuitRelayServer({ reservations: { maxReservations: 128 } })

  // WebRTC loads node-datachannel, a native library (~3 MiB resident, and time to load it):
  // only a node that listens for WebRTC (pages reach it that way) needs the transport
  const transports = [tcp(), webSockets(), circuitRelayTransport()]
  if (options.listen.some(a => a.includes('/webrtc'))) {
    const { webRTC } = await import('@libp2p/webrtc')
    // no public STUN servers: members reach each other on their LAN or through a sclerotium
    // relay, and a node must not contact third parties on its own
    transports.push(webRTC({ rtcConfiguration: { iceServers: [] } }))
  }

  const host = await createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: options.listen },
    transports,
    connectionEncrypters: [membershipEncrypter(options.membership), membershipEncrypter(options.membership, { protocol: ANY_NETWORK_MEMBERSHIP_PROTOCOL })],
    streamMuxers: [yamux()],
    connectionGater: {
      // members run on LANs and loopback: private addresses are the normal case here
      denyDialMultiaddr: () => false,
      denyDialPeer: (peer) => options.isRevoked(peer.toString()),
      denyInboundEncryptedConnection: (peer) => options.isRevoked(peer.toString()),
      denyOutboundEncryptedConnection: (peer) => options.isRevoked(peer.toString()),
      // WebRTC connections skip the encrypter (DTLS secures them); their peer must already
      // have proven membership on the relayed connection used for signalling.
      denyInboundUpgradedConnection: (peer) => !options.isVerified(peer),
      denyOutboundUpgradedConnection: (peer) => !options.isVerified(peer)
    },
    // Limits: the topology keeps few links per node (membership/link-policy.ts), so these
    // are the ceiling against floods, not the working size. A sclerotium of a 10,000-node
    // network holds its rhizomorphs (3 in √N of them pick it) plus the other sclerotia: a few
    // hundred. The kept links carry peer-store tags (membership/link-keeper.ts): committee and
    // anchor links are pruned last and KEEP_ALIVE makes libp2p dial them again when they drop.
    // Many members share one address behind a NAT (or on one machine): libp2p's default of 5
    // inbound connections per address per second refused some of them while a network formed.
    connectionManager: {
      maxConnections: options.limits?.maxConnections ?? MAX_CONNECTIONS,
      maxIncomingPendingConnections: 32,
      inboundConnectionThreshold: 32
    },
    peerDiscovery: options.bootstrap.length > 0 ? [bootstrap({ list: options.bootstrap, timeout: 100 })] : [],
    // A member cut off by the network (no RST, no FIN) is noticed by link-liveness.ts instead:
    // libp2p's monitor closes a connection at the first late ping, which a busy peer causes.
    connectionMonitor: { enabled: false },
    services: services as any
  }) as unknown as MyceliumHost
  keepGossipStreams(host)
  skipRecordedProtocolMerges(host)
  return host
}
