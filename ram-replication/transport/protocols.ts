// Protocol ids of RAM replication. The prefix comes from the daemon and carries the network id
// (`/mycelium/<networkId>`), so nodes of another network never speak to these handlers.
import type { AbortOptions, PeerId, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'

export interface ReplicationProtocols {
  /** Stripes and acknowledgements between a primary and a backup (directly or forwarded). */
  stripe: string
  /** A rhizomorph's forwarding of a stripe stream to a backup. */
  forward: string
}

export function replicationProtocols (prefix: string): ReplicationProtocols {
  const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
  return {
    // 2.0.0: sealed links take the backup's nonce and number their frames; a 1.0.0 peer
    // could not open them, so the two never negotiate the same protocol.
    stripe: `${base}/ram/stripe/2.0.0`,
    forward: `${base}/ram/forward/1.0.0`
  }
}

/** What replication needs from a libp2p node; a `Libp2p` instance satisfies it. */
export interface ReplicationNode {
  readonly peerId: PeerId
  handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
  unhandle: (protocol: string, options?: AbortOptions) => Promise<void>
  dialProtocol: (peer: PeerId, protocols: string | string[], options?: AbortOptions) => Promise<Stream>
}

export interface ReplicationLogger {
  info: (message: string, ...args: unknown[]) => void
  warn: (message: string, ...args: unknown[]) => void
  debug: (message: string, ...args: unknown[]) => void
  error: (message: string, ...args: unknown[]) => void
}

export const silentLogger: ReplicationLogger = {
  info: () => {},
  warn: () => {},
  debug: () => {},
  error: () => {}
}
