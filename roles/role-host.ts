// What the roles need from the host, as small interfaces: a libp2p node and its gossipsub
// service satisfy them as they are, and nothing here imports the daemon.
import type { Libp2p } from '@libp2p/interface'
import type { GossipSub } from '@libp2p/gossipsub'

export type RoleHost = Pick<Libp2p, 'peerId' | 'getMultiaddrs' | 'getConnections' | 'getPeers' | 'dial' | 'addEventListener' | 'removeEventListener'>

export type RolePubsub = Pick<GossipSub, 'subscribe' | 'unsubscribe' | 'publish' | 'getSubscribers' | 'addEventListener' | 'removeEventListener'>

/** pino-compatible: `log.info({ peer }, 'message')`. */
export interface RoleLogger {
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  debug: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

export const silentLogger: RoleLogger = { info: () => {}, warn: () => {}, debug: () => {}, error: () => {} }
