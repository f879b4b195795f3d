// The observing node's log of connects and disconnects, one `connection` record per remote
// peer. A peer that changes state more than `intermittentAfter` times within the window is
// condensed: its record drops the event list and carries counts and the intermittent tag, so
// a flapping peer costs one small record instead of one event per flap.
import type { ConnectionValue } from './types.ts'

export interface ConnectionLogOptions {
  /** Events older than this are forgotten (ms). Default 24 h. */
  windowMs?: number
  /** More than this many events in the window marks the peer intermittent. Default 8. */
  intermittentAfter?: number
}

interface PeerLog {
  events: Array<{ at: number, kind: 'c' | 'd' }>
  state: 'connected' | 'disconnected'
  since: number
}

export class ConnectionLog {
  private readonly windowMs: number
  private readonly intermittentAfter: number
  private readonly peers = new Map<string, PeerLog>()

  constructor (options: ConnectionLogOptions = {}) {
    this.windowMs = options.windowMs ?? 24 * 3600_000
    this.intermittentAfter = Math.min(options.intermittentAfter ?? 8, 64)
  }

  /** Records an event and returns the value of the remote's `connection` record. */
  record (remote: string, kind: 'connect' | 'disconnect', at: number): ConnectionValue {
    let log = this.peers.get(remote)
    if (log === undefined) {
      log = { events: [], state: 'disconnected', since: at }
      this.peers.set(remote, log)
    }
    const state = kind === 'connect' ? 'connected' : 'disconnected'
    if (state !== log.state) log.since = at
    log.state = state
    log.events.push({ at, kind: kind === 'connect' ? 'c' : 'd' })
    const horizon = at - this.windowMs
    while (log.events.length > 0 && log.events[0].at < horizon) log.events.shift()
    // keeping more than needed to count is pointless: counts are exact up to the cap
    if (log.events.length > 4096) log.events.splice(0, log.events.length - 4096)
    return this.valueOf(remote, log)
  }

  private valueOf (remote: string, log: PeerLog): ConnectionValue {
    if (log.events.length > this.intermittentAfter) {
      let connects = 0
      for (const e of log.events) if (e.kind === 'c') connects++
      return { remote, state: log.state, since: log.since, intermittent: true, connects, disconnects: log.events.length - connects }
    }
    return { remote, state: log.state, since: log.since, events: log.events.map(e => ({ at: e.at, kind: e.kind })) }
  }
}
