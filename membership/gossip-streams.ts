// Keeps gossipsub's one outbound stream per peer alive for as long as the peer is connected.
//
// @libp2p/gossipsub 17 opens a single outbound stream per peer and forgets it only on the
// stream's 'close' event, whose listener it adds after `newStream` resolves. A stream that
// closes in between (its connection hung up while the stream opened: the link keeper closing
// a link the other side dials straight back, a connection pruned as a duplicate) stays in its
// table, closed, and gossipsub never opens another one for that peer because "one exists".
// The peer then stays connected yet never receives this node's subscriptions or messages: a
// member silently cut off from gossip, from spores and from BFT certificates. Seen with
// fourteen members re-shaping into the tiered mesh on a loaded machine
// (test/membership/link-keeper.test.ts): sclerotia kept closed streams to two rhizomorphs,
// which then heard nobody.
//
// The repair only uses what gossipsub does on a fresh connection: the dead entry goes, and the
// peer's open connection is announced again, so gossipsub opens a stream and sends its
// subscriptions as usual.
import type { Connection, Libp2p, PeerId } from '@libp2p/interface'

export const GOSSIP_STREAM_CHECK_MS = 2_000

/** The parts of @libp2p/gossipsub's router this repair reads and calls. */
interface GossipRouter {
  readonly peers: Map<string, PeerId>
  readonly streamsOutbound: Map<string, { rawStream: { status: string } }>
  onPeerConnected?: (peerId: PeerId, connection: Connection) => void
}

function asRouter (pubsub: unknown): GossipRouter | undefined {
  const r = pubsub as Partial<GossipRouter> | undefined
  return r?.peers instanceof Map && r.streamsOutbound instanceof Map && typeof r.onPeerConnected === 'function'
    ? r as GossipRouter
    : undefined
}

/**
 * One pass: drops outbound gossip streams that are no longer open and has gossipsub open a
 * new one to every peer it routes for that is connected and has none.
 */
function repairGossipStreams (libp2p: Libp2p, pubsub: unknown): void {
  const router = asRouter(pubsub)
  if (router === undefined) return
  for (const [id, stream] of router.streamsOutbound) {
    if (stream.rawStream.status !== 'open') router.streamsOutbound.delete(id)
  }
  for (const [id, peerId] of router.peers) {
    if (router.streamsOutbound.has(id)) continue
    const connection = libp2p.getConnections(peerId).find(c => c.status === 'open' && c.limits === undefined)
    if (connection === undefined) continue
    router.onPeerConnected?.call(router, peerId, connection)
  }
}

/** Runs the repair every `intervalMs` while the host runs; returns a function that stops it. */
function watchGossipStreams (libp2p: Libp2p, pubsub: unknown, intervalMs = GOSSIP_STREAM_CHECK_MS): () => void {
  const timer = setInterval(() => {
    try {
      repairGossipStreams(libp2p, pubsub)
    } catch {
      // a pass that fails (the host stopping under it) is simply the next pass's work
    }
  }, intervalMs)
  ;(timer as { unref?: () => void }).unref?.()
  return () => { clearInterval(timer) }
}

/** Repairs the host's gossip streams whenever it runs: from now if it runs, and after each start. */
export function keepGossipStreams (libp2p: Libp2p & { services: { pubsub?: unknown } }, intervalMs = GOSSIP_STREAM_CHECK_MS): void {
  let stop: (() => void) | undefined
  const begin = (): void => { stop ??= watchGossipStreams(libp2p, libp2p.services.pubsub, intervalMs) }
  libp2p.addEventListener('start', begin)
  libp2p.addEventListener('stop', () => { stop?.(); stop = undefined })
  if (libp2p.status === 'started') begin()
}
