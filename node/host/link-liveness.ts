// Notices a member cut off by the network (no FIN, no RST) and closes its connection, so the
// features that wait on a departure (leases, placement, role views) hear of it.
//
// libp2p's own connection monitor closes a connection as soon as one ping misses its timeout.
// That is a failure detector that cannot tell a dead peer from a busy one: while ten daemons
// started on two cores, event loops stalled for seconds, pings missed, connections were closed
// and dialled again (each redial a handshake, more CPU), and a 10-node network took 37–43 s to
// mesh instead of 16 s. Here a link is dead only when the peer has answered no ping for
// DEAD_AFTER_MS of this node's own running time: one late answer costs nothing, and a stall of
// this node's event loop (the timer fired late) is not counted against anyone.
//
// Each side pings every PING_EVERY_MS, at most one ping in flight per connection. On a yamux
// connection (TCP, WebSockets, relayed) the ping is yamux's own ping frame: 12 bytes each way,
// answered inside the peer's muxer. A ping on libp2p's ping protocol opens a stream per ping:
// stream frames, protocol negotiation and a peer-store update on both sides, which made these
// pings a large share of an idle node's CPU and bytes. Where the muxer has no ping (WebRTC's
// data channels) the ping protocol is used.
import type { Connection, Logger, Startable } from '@libp2p/interface'

/** How often each connection is pinged. */
export const PING_EVERY_MS = 2_000
/** A peer that answered nothing for this long (while this node ran) is taken as gone. */
export const DEAD_AFTER_MS = 6_000
const PING_PROTOCOL = '/ipfs/ping/1.0.0'
const PING_BYTES = 32

interface LinkLivenessComponents {
  connectionManager: { getConnections: () => Connection[] }
  logger: { forComponent: (name: string) => Logger }
}

export interface LinkLivenessInit {
  pingEveryMs?: number
  deadAfterMs?: number
}

/** A muxer that can ping its peer (yamux); the ping resolves when the answer comes. */
interface PingingMuxer { ping: (options?: { signal?: AbortSignal }) => Promise<number> }

/**
 * The connection's muxer, when it pings. libp2p's Connection interface does not show its
 * muxer; its implementation keeps it in `muxer`.
 */
function pingingMuxer (connection: Connection): PingingMuxer | undefined {
  const muxer = (connection as unknown as { muxer?: Partial<PingingMuxer> }).muxer
  return typeof muxer?.ping === 'function' ? muxer as PingingMuxer : undefined
}

interface LinkState {
  /** the instant, on this node's stall-free clock, of the last answer (or the connection's opening) */
  lastAnswer: number
  pinging: boolean
}

export class LinkLiveness implements Startable {
  private readonly links = new Map<string, LinkState>()
  private readonly pingEveryMs: number
  private readonly deadAfterMs: number
  private readonly log: Logger
  private timer?: ReturnType<typeof setInterval>
  private stopping = new AbortController()
  /** milliseconds this node ran without stalls: the clock that silences are measured on */
  private liveClock = 0
  private lastTick = 0

  private readonly components: LinkLivenessComponents

  constructor (components: LinkLivenessComponents, init: LinkLivenessInit = {}) {
    this.components = components
    this.pingEveryMs = init.pingEveryMs ?? PING_EVERY_MS
    this.deadAfterMs = init.deadAfterMs ?? DEAD_AFTER_MS
    this.log = components.logger.forComponent('mycelium:link-liveness')
  }

  readonly [Symbol.toStringTag] = 'mycelium:link-liveness'

  start (): void {
    this.stopping = new AbortController()
    this.lastTick = performance.now()
    this.timer = setInterval(() => { this.tick() }, this.pingEveryMs)
    this.timer.unref?.()
  }

  stop (): void {
    clearInterval(this.timer)
    this.stopping.abort()
    this.links.clear()
  }

  /** This node's stall-free clock now. */
  private liveNow (): number {
    return this.liveClock + Math.min(performance.now() - this.lastTick, this.pingEveryMs * 1.5)
  }

  private tick (): void {
    // a tick that came late means this node's event loop was stalled: that time passed for
    // nobody's answers, so only the expected interval counts
    this.liveClock = this.liveNow()
    this.lastTick = performance.now()
    const open = new Set<string>()
    for (const connection of this.components.connectionManager.getConnections()) {
      if (connection.status !== 'open') continue
      open.add(connection.id)
      let state = this.links.get(connection.id)
      if (state === undefined) {
        state = { lastAnswer: this.liveClock, pinging: false }
        this.links.set(connection.id, state)
      }
      const silentMs = this.liveClock - state.lastAnswer
      if (silentMs > this.deadAfterMs) {
        this.log('no answer from %p for %d ms: closing the connection', connection.remotePeer, silentMs)
        this.links.delete(connection.id)
        connection.abort(new Error(`no answer to pings for ${Math.round(silentMs)} ms`))
        continue
      }
      if (!state.pinging) this.ping(connection, state)
    }
    for (const id of this.links.keys()) if (!open.has(id)) this.links.delete(id)
  }

  private ping (connection: Connection, state: LinkState): void {
    state.pinging = true
    const muxer = pingingMuxer(connection)
    if (muxer !== undefined) {
      // No signal: yamux takes an answer to a ping it no longer waits for as a protocol error
      // and closes the connection. The ping stays in flight until answered or the link is closed.
      muxer.ping().then(
        () => { state.lastAnswer = this.liveNow() },
        (err: Error) => { this.log('ping of %p failed: %s', connection.remotePeer, err.message) }
      ).finally(() => { state.pinging = false })
      return
    }
    // a ping abandoned at the dead line: the next tick decides, and may ping again
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.deadAfterMs)])
    void (async () => {
      const stream = await connection.newStream(PING_PROTOCOL, { signal, runOnLimitedConnection: true })
      const abandon = (): void => { stream.abort(new Error('ping abandoned')) }
      signal.addEventListener('abort', abandon, { once: true })
      try {
        stream.send(crypto.getRandomValues(new Uint8Array(PING_BYTES)))
        let echoed = 0
        for await (const chunk of stream) {
          echoed += chunk.byteLength
          if (echoed >= PING_BYTES) break
        }
        if (echoed >= PING_BYTES) state.lastAnswer = this.liveNow()
        await stream.close({ signal: AbortSignal.timeout(this.pingEveryMs) }).catch(() => {})
      } finally {
        signal.removeEventListener('abort', abandon)
        // a stream the peer leaves half open would count against the one ping stream per
        // connection that libp2p allows, and the next ping could not start
        if (stream.status !== 'closed') stream.abort(new Error('ping stream left open'))
      }
    })().catch((err: Error) => {
      // a peer that says it has no ping protocol has answered all the same
      if (err.name === 'UnsupportedProtocolError') state.lastAnswer = this.liveNow()
      else this.log('ping of %p failed: %s', connection.remotePeer, err.message)
    }).finally(() => { state.pinging = false })
  }
}

export function linkLiveness (init: LinkLivenessInit = {}): (components: LinkLivenessComponents) => LinkLiveness {
  return (components) => new LinkLiveness(components, init)
}
