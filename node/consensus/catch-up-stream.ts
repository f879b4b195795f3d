// Catch-up of certified epochs over a direct libp2p stream (consensus/catch-up.ts holds the
// messages and the checks): the lagging member asks one member at a time, and only it pays.
//
// Serving is bounded so that a member that asks over and over costs little and only here: only
// verified members of the network are answered, each at most REQUESTS_PER_MINUTE times a
// minute, a request must arrive within REQUEST_READ_MS and fit in MAX_CATCH_UP_REQUEST_BYTES,
// and a response holds at most MAX_CATCH_UP_EPOCHS epochs and about MAX_CATCH_UP_RESPONSE_BYTES,
// or at most MAX_HEADER_PAGE certified headers in MAX_HEADER_PAGE_BYTES (a light sync's page).
// Asking is bounded too: each request has REQUEST_TIMEOUT_MS to be answered, and a response
// longer than MAX_CATCH_UP_FRAME_BYTES is not read.
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, Stream } from '@libp2p/interface'
import { MAX_CATCH_UP_REQUEST_BYTES, MAX_CATCH_UP_FRAME_BYTES, type CatchUpTransport } from '../../consensus/index.ts'
import type { DirectLinksHost } from './direct-links.ts'

export const REQUESTS_PER_MINUTE = 20
export const REQUEST_TIMEOUT_MS = 5000
const REQUEST_READ_MS = 2000
/** Requests served at once over all peers (each is a synchronous encode and one write). */
const SERVING_MAX = 4

export interface CatchUpStreamOptions {
  host: DirectLinksHost
  /** e.g. `/mycelium/<networkId>/bft/catch-up/1.0.0` */
  protocol: string
  /** Whether this peer may ask, and be asked (a verified member of the network). */
  accepts: (peerId: string) => boolean
  /** The answer to a request (PrimaryEpochs.serve); throws for a request that is not one. */
  answer: () => ((request: Uint8Array) => Uint8Array | Promise<Uint8Array>) | undefined
  /** Peers to prefer when asking (the committee candidates), before other members. */
  preferred?: () => Iterable<string>
  log?: { debug: (obj: object, msg: string) => void }
}

export interface CatchUpStream extends CatchUpTransport {
  start: () => Promise<void>
  stop: () => Promise<void>
  stats: () => { served: number, refusedRate: number, refusedStranger: number, refusedBad: number }
}

function shuffled<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
  return items
}

export function catchUpStream (o: CatchUpStreamOptions): CatchUpStream {
  const asked = new Map<string, number[]>()
  const counts = { served: 0, refusedRate: 0, refusedStranger: 0, refusedBad: 0 }
  let serving = 0
  let running = false

  /** True if `peer` may be served now (at most REQUESTS_PER_MINUTE in the last minute). */
  const admit = (peer: string): boolean => {
    const now = Date.now()
    const times = (asked.get(peer) ?? []).filter(t => now - t < 60_000)
    if (times.length >= REQUESTS_PER_MINUTE) {
      asked.set(peer, times)
      return false
    }
    times.push(now)
    asked.set(peer, times)
    // Forget peers that stopped asking, so the table stays as small as the set of askers.
    if (asked.size > 1024) for (const [p, t] of asked) if (t.every(x => now - x >= 60_000)) asked.delete(p)
    return true
  }

  const serve = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    const answer = o.answer()
    if (!running || answer === undefined || !o.accepts(from)) {
      counts.refusedStranger++
      stream.abort(new Error('not a verified member'))
      return
    }
    if (!admit(from) || serving >= SERVING_MAX) {
      counts.refusedRate++
      stream.abort(new Error('too many catch-up requests'))
      return
    }
    serving++
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_CATCH_UP_REQUEST_BYTES })
      const request = (await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_MS) })).subarray()
      let response: Uint8Array
      try {
        response = await answer(request)
      } catch (err) {
        counts.refusedBad++
        throw err
      }
      await lp.write(response, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
      counts.served++
      await stream.close({ signal: AbortSignal.timeout(REQUEST_READ_MS) }).catch(() => {})
    } catch (err) {
      o.log?.debug({ peer: from, err: (err as Error).message }, 'catch-up request not served')
      stream.abort(err as Error)
    } finally {
      serving--
    }
  }

  return {
    async start () {
      running = true
      await o.host.handle(o.protocol, (stream, connection) => { void serve(stream, connection) }, { maxInboundStreams: 2 })
    },

    async stop () {
      running = false
      await o.host.unhandle(o.protocol).catch(() => {})
    },

    stats: () => ({ ...counts }),

    peers () {
      const self = o.host.peerId.toString()
      const connected = new Set(o.host.getConnections().filter(c => c.status === 'open' && c.limits === undefined).map(c => c.remotePeer.toString()))
      const ok = (p: string): boolean => p !== self && connected.has(p) && o.accepts(p)
      // Shuffled, so that members behind do not all ask the same one first.
      const first = shuffled([...new Set(o.preferred?.() ?? [])].filter(ok))
      const rest = shuffled([...connected].filter(p => ok(p) && !first.includes(p)))
      return [...first, ...rest]
    },

    async request (peer, request, signal) {
      const s = AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)])
      const stream = await o.host.dialProtocol(peerIdFromString(peer), o.protocol, { signal: s })
      try {
        const lp = lpStream(stream, { maxDataLength: MAX_CATCH_UP_FRAME_BYTES })
        await lp.write(request, { signal: s })
        const response = (await lp.read({ signal: s })).subarray()
        await stream.close({ signal: s }).catch(() => {})
        return response
      } catch (err) {
        stream.abort(err as Error)
        throw err
      }
    }
  }
}
