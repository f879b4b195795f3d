// Real in-process libp2p nodes for the roles tests: TCP on 127.0.0.1, noise, yamux,
// identify, gossipsub, kad-dht (its mode follows the role) and the probe protocol.
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { networkProbe, relaySwitch, type NetworkProbe, type RelaySwitch } from '../../roles/index.ts'

export const PROBE_PROTOCOL = '/mycelium/myctest/probe/1.0.0'
export const ROLE_TOPIC = 'mycelium/myctest/roles/1'

export type RoleTestNode = Libp2p<{ pubsub: GossipSub, identify: unknown, ping: unknown, dht: KadDHT, probe: NetworkProbe, relay: RelaySwitch }>

/** `deny`: peer ids this node refuses to connect to, either way (a partition, while it holds them). */
export async function startNode (deny: ReadonlySet<string> = new Set()): Promise<{ node: RoleTestNode, secretKey: Uint8Array }> {
  const privateKey = await generateKeyPair('Ed25519')
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false, denyDialPeer: (peer) => deny.has(peer.toString()), denyInboundEncryptedConnection: (peer) => deny.has(peer.toString()) },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({ protocol: '/mycelium/myctest/kad/1.0.0', clientMode: false, peerInfoMapper: passthroughMapper }),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false, heartbeatInterval: 300 }),
      probe: networkProbe({ protocol: PROBE_PROTOCOL, peerCooldownMs: 0 }),
      relay: relaySwitch()
    }
  }) as unknown as RoleTestNode
  return { node, secretKey: privateKey.raw.subarray(0, 32) }
}

export async function waitFor (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

export const quietLog = { info: () => {}, warn: () => {}, debug: () => {}, error: () => {} }
