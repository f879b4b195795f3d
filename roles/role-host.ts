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

/** A pending timer; `unref` keeps it from holding the process open. */
export interface RoleTimer { unref?: () => unknown }

/**
 * The timers the role service schedules with: the process's own by default. Injected so a
 * simulator can run many role services on one virtual clock (test/sim/scale).
 */
export interface RoleTimers {
  setTimeout: (fn: () => void, ms: number) => RoleTimer
  setInterval: (fn: () => void, ms: number) => RoleTimer
  clear: (timer: RoleTimer | undefined) => void
}

export const systemTimers: RoleTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  setInterval: (fn, ms) => setInterval(fn, ms),
  // clearTimeout and clearInterval are interchangeable in Node; both, as before, for clarity
  clear: (timer) => { clearTimeout(timer as NodeJS.Timeout); clearInterval(timer as NodeJS.Timeout) }
}
