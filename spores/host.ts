// What the spores services need from the libp2p host; a js-libp2p node satisfies it.
import type { PeerId, Stream, Connection, AbortOptions } from '@libp2p/interface'
import type { TopicValidatorFn } from '@libp2p/gossipsub'

export interface SporeHost {
  peerId: PeerId
  handle: (protocol: string, handler: (stream: Stream, connection: Connection) => void | Promise<void>, options?: { maxInboundStreams?: number, runOnLimitedConnection?: boolean }) => Promise<void>
  unhandle: (protocol: string) => Promise<void> | void
  dialProtocol: (peer: PeerId, protocol: string, options?: AbortOptions & { runOnLimitedConnection?: boolean }) => Promise<Stream>
  getPeers: () => PeerId[]
}

/** The part of a gossipsub service the latent gossip uses. */
export interface SporePubSub {
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  topicValidators: Map<string, TopicValidatorFn>
}

/** Protocol ids and topics of one network: `/mycelium/<networkId>` and `mycelium/<networkId>`. */
export interface SporeNames {
  protocolPrefix: string
  topicPrefix: string
}

export function sporeProtocols (names: SporeNames): { primary: string, sync: string, gossip: string } {
  return {
    primary: `${names.protocolPrefix}/spores/primary/1.0.0`,
    sync: `${names.protocolPrefix}/spores/sync/1.0.0`,
    gossip: `${names.topicPrefix}/spores/latent/1`
  }
}
