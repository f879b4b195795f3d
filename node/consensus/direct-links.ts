// Round messages between committee members over direct streams.
//
// Through gossipsub a proposal is signed and verified once more by the gossip layer, then
// relayed through the mesh: every member takes it from up to D peers, and every hop waits its
// turn behind whatever else the node is gossiping. A round needs three message delays
// (proposal, commits, reveals); on a direct stream each delay is one write to each member. So
// the rounds topic goes straight to the committee candidates this node is connected to, and
// through gossip as well whenever one of them has no working direct link here (not connected,
// an older node without the protocol, a stream that broke): the mesh may still reach it, and a
// copy that arrives both ways is handed on once. Certificates and evidence stay on gossip:
// every node needs them, and no round waits on them.
//
// Every consensus message carries its sender's signature, checked by the engine, so a direct
// stream needs no more than the connection's own authentication; it is taken only from
// verified members of the network, and a frame that is too long or refused closes it.
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { sha256, toHex } from '../../crypto/index.ts'
import { MAX_MESSAGE_BYTES, type ConsensusPubSub, type MessageVerdict } from '../../consensus/index.ts'

/** The part of a libp2p node the direct links use. */
export interface DirectLinksHost {
  peerId: PeerId
  handle: (protocol: string, handler: (stream: Stream, connection: Connection) => void, options?: { maxInboundStreams?: number, runOnLimitedConnection?: boolean }) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  dialProtocol: (peer: PeerId, protocol: string, options?: { signal?: AbortSignal }) => Promise<Stream>
  getConnections: () => Connection[]
}

export interface DirectLinksOptions {
  host: DirectLinksHost
  /** Gossip, for everything not sent directly and as the second path of round messages. */
  gossip: ConsensusPubSub
  /** e.g. `/mycelium/<networkId>/bft/direct/1.0.0` */
  protocol: string
  /** The topic whose messages also go over direct streams. */
  directTopic: string
  /** Whether a direct stream from this peer is taken (a verified member of the network). */
  accepts: (peerId: string) => boolean
  /** The peers round messages are for (the committee candidates); all connected peers by default. */
  targets?: () => Iterable<string>
  log?: { debug: (obj: object, msg: string) => void }
}

const OPEN_TIMEOUT_MS = 2000
/** Message ids kept to drop the second copy; a round's messages arrive within a second or two. */
const SEEN_MAX = 4096
/** Frames waiting for a stream that is still being opened. */
const PENDING_MAX = 64
/**
 * Bytes written to a direct stream and not yet taken by the peer: a member that stops reading
 * (slow, or Byzantine) is dropped to gossip past this, instead of being buffered without end.
 */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024
/** A peer whose direct stream failed is served by gossip alone for this long. */
const FAILED_BACKOFF_MS = 30_000

interface Link {
  stream?: Stream
  write?: (data: Uint8Array) => Promise<void>
  opening?: Promise<void>
  pending: Uint8Array[]
  /** Frames written and not yet taken by the stream: gossip carries them if the link fails. */
  inflight: Set<Uint8Array>
  unread: number
  /** Dropped: everything still meant for it goes to gossip, once. */
  dropped?: boolean
}

export interface DirectLinks extends ConsensusPubSub {
  start: () => Promise<void>
  stop: () => Promise<void>
  stats: () => { sentDirect: number, receivedDirect: number, duplicates: number, links: number }
}

export function directLinks (o: DirectLinksOptions): DirectLinks {
  const links = new Map<string, Link>()
  const inbound = new Set<Stream>()
  const handlers = new Set<(data: Uint8Array) => void>()
  const seen = new Set<string>()
  const judges: Array<(data: Uint8Array) => MessageVerdict> = []
  const counts = { sentDirect: 0, receivedDirect: 0, duplicates: 0 }
  let running = false

  /** True the first time a message is seen, by either path. */
  const firstSight = (data: Uint8Array): boolean => {
    const id = toHex(sha256(data))
    if (seen.has(id)) {
      counts.duplicates++
      return false
    }
    if (seen.size >= SEEN_MAX) seen.delete(seen.values().next().value as string)
    seen.add(id)
    return true
  }

  const deliver = (data: Uint8Array): void => {
    if (!firstSight(data)) return
    for (const h of [...handlers]) h(data)
  }

  const failedAt = new Map<string, number>()

  /** A link that failed: its peer is served by gossip for a while, and what it held goes there now. */
  const drop = (peer: string, link: Link, err?: Error, unsent: Uint8Array[] = []): void => {
    if (links.get(peer) === link) links.delete(peer)
    if (link.dropped === true) {
      if (running) for (const data of unsent) void o.gossip.publish(o.directTopic, data).catch(() => {})
      return
    }
    link.dropped = true
    link.stream?.abort(err ?? new Error('direct link dropped'))
    if (err === undefined || !running) return
    o.log?.debug({ peer, err: err.message }, 'direct consensus link failed; gossip carries its messages')
    failedAt.set(peer, Date.now())
    const resend = new Set([...link.pending.splice(0), ...link.inflight, ...unsent])
    link.inflight.clear()
    for (const data of resend) void o.gossip.publish(o.directTopic, data).catch(() => {})
  }

  /** Writes one frame on an open link, counting it until the stream takes it. */
  const writeOn = (peer: string, l: Link, data: Uint8Array): void => {
    if (l.write === undefined) return
    if (l.dropped === true || l.unread + data.length > MAX_UNREAD_BYTES) {
      drop(peer, l, new Error(`peer left ${l.unread} bytes unread`), [data])
      return
    }
    l.unread += data.length
    l.inflight.add(data)
    l.write(data).then(() => {
      l.unread -= data.length
      l.inflight.delete(data)
    }, (err: Error) => {
      // Handed to gossip already if the link was dropped while this write waited.
      drop(peer, l, err, l.inflight.delete(data) ? [data] : [])
    })
  }

  const open = (peer: string, link: Link): Promise<void> => {
    link.opening ??= (async () => {
      const stream = await o.host.dialProtocol(peerIdFromString(peer), o.protocol, { signal: AbortSignal.timeout(OPEN_TIMEOUT_MS) })
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      link.stream = stream
      link.write = async (data) => { await lp.write(data) }
      stream.addEventListener('close', () => { if (links.get(peer) === link) links.delete(peer) })
      for (const data of link.pending.splice(0)) writeOn(peer, link, data)
    })().catch((err: Error) => { drop(peer, link, err) })
    return link.opening
  }

  const sendTo = (peer: string, data: Uint8Array): void => {
    let link = links.get(peer)
    if (link === undefined) {
      link = { pending: [], inflight: new Set(), unread: 0 }
      links.set(peer, link)
    }
    counts.sentDirect++
    const l = link
    if (l.write === undefined) {
      if (l.pending.length < PENDING_MAX) l.pending.push(data)
      void open(peer, l)
      return
    }
    writeOn(peer, l, data)
  }

  /** The targets a direct stream reaches now, and whether any target is left to gossip. */
  const directTargets = (): { direct: string[], unreached: boolean } => {
    const connected = new Set(o.host.getConnections().filter(c => c.status === 'open' && c.limits === undefined).map(c => c.remotePeer.toString()))
    const self = o.host.peerId.toString()
    const now = Date.now()
    const direct: string[] = []
    let unreached = false
    for (const peer of o.targets === undefined ? connected : new Set(o.targets())) {
      if (peer === self) continue
      const failed = failedAt.get(peer)
      if (failed !== undefined && now - failed >= FAILED_BACKOFF_MS) failedAt.delete(peer)
      if (connected.has(peer) && o.accepts(peer) && !failedAt.has(peer)) direct.push(peer)
      else unreached = true
    }
    return { direct, unreached: unreached || direct.length === 0 }
  }

  const serve = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = connection.remotePeer.toString()
    if (!running || !o.accepts(from)) {
      stream.abort(new Error('not a verified member'))
      return
    }
    inbound.add(stream)
    const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
    try {
      while (running) {
        const data = (await lp.read()).subarray()
        counts.receivedDirect++
        // The engine decodes and checks what it is handed; a member whose frames it refuses
        // gains nothing from the direct path that gossip would not give it.
        if (judges.some(j => j(data) === 'reject')) throw new Error('refused consensus message')
        deliver(data)
      }
    } catch (err) {
      if (running) o.log?.debug({ peer: from, err: (err as Error).message }, 'direct consensus stream ended')
      stream.abort(err as Error)
    } finally {
      inbound.delete(stream)
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
      for (const [peer, link] of links) drop(peer, link)
      for (const s of inbound) s.abort(new Error('stopped'))
      inbound.clear()
    },

    stats: () => ({ ...counts, links: links.size }),

    async publish (topic, data) {
      if (topic !== o.directTopic || !running) return await o.gossip.publish(topic, data)
      // Own messages are marked seen, so a copy relayed back is not handed on.
      firstSight(data)
      const { direct, unreached } = directTargets()
      for (const peer of direct) sendTo(peer, data)
      if (unreached) return await o.gossip.publish(topic, data)
    },

    subscribe (topic, handler) {
      if (topic !== o.directTopic) return o.gossip.subscribe(topic, handler)
      handlers.add(handler)
      const stopGossip = o.gossip.subscribe(topic, deliver)
      return () => {
        handlers.delete(handler)
        stopGossip()
      }
    },

    validate (topic, judge) {
      const stopGossip = o.gossip.validate?.(topic, judge) ?? (() => {})
      if (topic !== o.directTopic) return stopGossip
      judges.push(judge)
      return () => {
        judges.splice(judges.indexOf(judge), 1)
        stopGossip()
      }
    }
  }
}
