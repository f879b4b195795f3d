// The page's libp2p node: WebSockets to sclerotia, circuit relay and WebRTC to reach other
// pages, the membership handshake inside noise, and a gater that admits only peers that proved
// membership. WebRTC connections skip the encrypter (DTLS secures them), so they are admitted
// only when their peer already passed the handshake on the relayed connection used to signal.
import { createLibp2p, type Libp2p } from 'libp2p'
import { webSockets } from '@libp2p/websockets'
import { webRTC } from '@libp2p/webrtc'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { yamux } from '@libp2p/yamux'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { membershipEncrypter, keepGossipStreams, type MembershipPolicy } from '../../membership/index.ts'

export interface HyphaeServices {
  [name: string]: unknown
  identify: Identify
  ping: Ping
  pubsub: GossipSub
}

export type HyphaeLibp2p = Libp2p<HyphaeServices>

export interface HyphaeNodeOptions {
  privateKey: PrivateKey
  membership: MembershipPolicy
  isVerified: (peer: PeerId) => boolean
  /** relay reservations to hold: one per sclerotium the page is homed on */
  reservations: number
}

export async function createHyphaeNode (options: HyphaeNodeOptions): Promise<HyphaeLibp2p> {
  const node = await createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: [...Array.from({ length: options.reservations }, () => '/p2p-circuit'), '/webrtc'] },
    transports: [
      webSockets(),
      // no STUN/TURN: members reach each other on their own networks, and a page must not
      // contact third-party servers
      webRTC({ rtcConfiguration: { iceServers: [] } }),
      circuitRelayTransport()
    ],
    connectionEncrypters: [membershipEncrypter(options.membership)],
    streamMuxers: [yamux()],
    connectionGater: {
      // sclerotia live on LANs and loopback: private addresses are the normal case
      denyDialMultiaddr: () => false,
      denyInboundUpgradedConnection: (peer) => !options.isVerified(peer),
      denyOutboundUpgradedConnection: (peer) => !options.isVerified(peer)
    },
    connectionMonitor: { enabled: true },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false, globalSignaturePolicy: 'StrictSign' })
    }
  }) as unknown as HyphaeLibp2p
  keepGossipStreams(node)
  return node
}
