// Real in-process libp2p nodes for the replication tests and the RAM bench: TCP on 127.0.0.1,
// noise, yamux. Every node dials the others it will need so their addresses are known.
import { createLibp2p } from 'libp2p'
import type { Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'

const secrets = new WeakMap<Libp2p, Uint8Array>()

/** The node's Ed25519 secret (32 bytes), which seals replication links. */
export function secretKeyOf (node: Libp2p): Uint8Array {
  const secret = secrets.get(node)
  if (secret == null) throw new Error('not a node of this mesh')
  return secret
}

/**
 * `refuse(peer)` true: no connection with that peer in either direction (a partition the test
 * controls; existing connections must be closed by the test).
 */
export async function startReplicationNode (port = 0, refuse?: (peer: string) => boolean): Promise<Libp2p> {
  const privateKey = await generateKeyPair('Ed25519')
  const node = await createLibp2p({
    ...(refuse === undefined
      ? {}
      : {
          connectionGater: {
            denyDialPeer: async (peer) => refuse(peer.toString()),
            denyInboundEncryptedConnection: async (peer) => refuse(peer.toString()),
            denyOutboundEncryptedConnection: async (peer) => refuse(peer.toString())
          }
        }),
    privateKey,
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { maxConnections: 64, inboundConnectionThreshold: 100 }
  })
  secrets.set(node, privateKey.raw.subarray(0, 32))
  return node
}

/** Connect `from` to each of `to` (so later dials by peer id find them). */
export async function connect (from: Libp2p, to: Libp2p[]): Promise<void> {
  for (const node of to) await from.dial(node.getMultiaddrs())
}

export async function stopAll (nodes: Array<Libp2p | undefined>): Promise<void> {
  await Promise.all(nodes.map(async node => { await node?.stop() }))
}

export async function waitFor (check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
