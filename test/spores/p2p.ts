// Real in-process libp2p nodes for the spores tests: TCP on 127.0.0.1, noise, yamux,
// identify and gossipsub.
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { generateKeyPair, privateKeyFromRaw } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { signerOf, type Signer } from '../../spores/index.ts'

export type TestNode = Libp2p<{ pubsub: GossipSub, identify: unknown }>

export async function p2pIdentity (): Promise<{ privateKey: PrivateKey, signer: Signer }> {
  const privateKey = await generateKeyPair('Ed25519')
  const signer = signerOf(privateKey.raw.subarray(0, 32))
  return { privateKey: privateKeyFromRaw(privateKey.raw), signer }
}

export async function startNode (privateKey: PrivateKey, listen = '/ip4/127.0.0.1/tcp/0'): Promise<TestNode> {
  return await createLibp2p({
    privateKey,
    addresses: { listen: [listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false, heartbeatInterval: 300 })
    }
  }) as unknown as TestNode
}

export async function waitFor (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
