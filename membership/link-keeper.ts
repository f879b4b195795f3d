// Applies a link plan (link-policy.ts) to a running libp2p host, again every few seconds:
// dials the members the plan wants and is not connected to, tags them in the peer store so
// libp2p's connection manager keeps them (KEEP_ALIVE: libp2p redials them when they drop,
// and its pruner closes them last), and closes the links this node opened that the plan does
// not want once they have carried no purposeful stream for IDLE_GRACE_MS.
//
// Only a link this node opened is closed here: whoever dialled decides whether a link is
// worth keeping, so a sclerotium never cuts the rhizomorph that chose it, and two nodes
// never close each other's links in turn. A feature that needs a member it has no link to
// (a bundle, a log, a replication stripe, the gateway) dials on demand; the link then lives
// as long as it carries that feature's streams, plus the grace.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { KEEP_ALIVE, type Connection, type Libp2p, type PeerId } from '@libp2p/interface'
import type { LinkKind, LinkPlan } from './link-policy.ts'
import type { MemberLog } from './member-log.ts'

export const LINK_SWEEP_MS = 3_000
export const IDLE_GRACE_MS = 30_000
const DIALS_PER_SWEEP = 8
const DIAL_TIMEOUT_MS = 8_000
const RETRY_MIN_MS = 5_000
const RETRY_MAX_MS = 60_000
/** the peer-store tag this node's kept links carry; its value orders libp2p's pruning */
export const LINK_TAG = 'mycelium-link'
export const LINK_KEEP_ALIVE_TAG = `${KEEP_ALIVE}-mycelium`
const KAD_KEEP_ALIVE_TAG = `${KEEP_ALIVE}-kad-dht`
const TAG_VALUE: Record<LinkKind, number> = { committee: 100, anchor: 90, sclerotium: 80, 'small-network': 60, neighbour: 40 }

/**
 * Streams every connection carries whatever it is for (gossip, identify, pings, DHT, roster):
 * they do not make a link purposeful. Anything else (spores sync, bundles, logs, replication,
 * the gateway, relaying) does.
 */
const AMBIENT = [/\/meshsub\//, /\/floodsub\//, /^\/ipfs\/id\//, /^\/ipfs\/ping\//, /\/kad\/\d/, /\/roster\//, /\/bft\/direct\//, /^\/libp2p\/autonat\//, /^\/libp2p\/dcutr/]

export function isAmbientProtocol (protocol: string | undefined): boolean {
  return protocol === undefined || protocol === '' || AMBIENT.some(r => r.test(protocol))
}

export interface LinkKeeperOptions {
  plan: () => LinkPlan
  /** addresses to dial a wanted member at (its own announcement, its advertisement) */
  addrsOf: (peerId: string) => string[]
  /** true for members this node may dial (not revoked) */
  dialable: (peerId: string) => boolean
  intervalMs?: number
  idleGraceMs?: number
  now?: () => number
  log: MemberLog
}

export interface LinkReport {
  /** members the plan keeps, with why */
  kept: Array<{ peerId: string, kind: LinkKind, connected: boolean }>
  /** connected members the plan does not keep (on-demand or inbound links) */
  other: number
  /** members counted by the plan, self included */
  members: number
  /** unwanted idle links this node closed since start */
  closed: number
}

export class LinkKeeper {
  private readonly o: LinkKeeperOptions
  private libp2p?: Libp2p
  private timer?: ReturnType<typeof setInterval>
  private running = false
  private sweeping = false
  private last: LinkPlan = { keep: new Map(), members: 1 }
  private readonly tagged = new Map<string, LinkKind>()
  private readonly busyAt = new Map<string, number>()
  /** failed dials of wanted members: how many in a row, when the last was, and the addresses it tried */
  private readonly failures = new Map<string, { count: number, at: number, addrs: string }>()
  private closed = 0

  constructor (options: LinkKeeperOptions) {
    this.o = options
  }

  private now (): number {
    return this.o.now?.() ?? Date.now()
  }

  start (libp2p: Libp2p): void {
    this.libp2p = libp2p
    this.running = true
    this.timer = setInterval(() => { void this.sweep() }, this.o.intervalMs ?? LINK_SWEEP_MS)
    ;(this.timer as { unref?: () => void }).unref?.()
  }

  stop (): void {
    this.running = false
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** True when the current plan keeps a link to this member. */
  keeps (peerId: string): boolean {
    return this.last.keep.has(peerId)
  }

  report (): LinkReport {
    const connected = new Set(this.libp2p?.getPeers().map(p => p.toString()) ?? [])
    return {
      kept: [...this.last.keep].map(([peerId, kind]) => ({ peerId, kind, connected: connected.has(peerId) })),
      other: [...connected].filter(id => !this.last.keep.has(id)).length,
      members: this.last.members,
      closed: this.closed
    }
  }

  /** One round: plan, tag, close idle unwanted links, dial missing wanted ones. */
  async sweep (): Promise<void> {
    const libp2p = this.libp2p
    if (libp2p === undefined || !this.running || this.sweeping) return
    this.sweeping = true
    try {
      const plan = this.o.plan()
      this.last = plan
      const now = this.now()
      const byPeer = new Map<string, Connection[]>()
      for (const c of libp2p.getConnections()) {
        const id = c.remotePeer.toString()
        byPeer.set(id, [...(byPeer.get(id) ?? []), c])
      }
      await this.retag(libp2p, plan, byPeer)
      for (const [id, connections] of byPeer) {
        if (plan.keep.has(id)) continue
        if (connections.some(c => c.streams.some(s => !isAmbientProtocol(s.protocol)))) this.busyAt.set(id, now)
        const ours = connections.filter(c => c.direction === 'outbound' && c.status === 'open')
        if (ours.length === 0) continue
        const since = Math.max(this.busyAt.get(id) ?? 0, ...connections.map(c => c.timeline.open))
        if (now - since < (this.o.idleGraceMs ?? IDLE_GRACE_MS)) continue
        await this.hangUp(libp2p, connections[0].remotePeer)
      }
      for (const id of this.busyAt.keys()) if (!byPeer.has(id)) this.busyAt.delete(id)
      await this.dialMissing(libp2p, plan, byPeer, now)
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, 'link sweep failed')
    } finally {
      this.sweeping = false
    }
  }

  private async retag (libp2p: Libp2p, plan: LinkPlan, byPeer: Map<string, Connection[]>): Promise<void> {
    for (const [id, kind] of this.tagged) {
      if (plan.keep.get(id) === kind) continue
      this.tagged.delete(id)
      await this.tag(libp2p, id, undefined)
    }
    for (const [id, kind] of plan.keep) {
      if (this.tagged.get(id) === kind || !byPeer.has(id)) continue
      this.tagged.set(id, kind)
      await this.tag(libp2p, id, kind)
    }
  }

  private async tag (libp2p: Libp2p, id: string, kind: LinkKind | undefined): Promise<void> {
    try {
      await libp2p.peerStore.merge(peerIdFromString(id), {
        tags: kind === undefined
          ? { [LINK_TAG]: undefined, [LINK_KEEP_ALIVE_TAG]: undefined }
          : { [LINK_TAG]: { value: TAG_VALUE[kind] }, [LINK_KEEP_ALIVE_TAG]: { value: 1 } }
      })
    } catch (err) {
      this.o.log.debug({ peer: id, err: (err as Error).message }, 'could not tag a link')
    }
  }

  /**
   * Closes every connection to the peer, not only the one this node opened: gossipsub keeps
   * one outbound stream per peer on whichever connection came first, and closing that
   * connection alone would leave the peer connected with no stream to gossip to it. If the
   * other side wanted the link, it dials again and gets fresh streams.
   */
  private async hangUp (libp2p: Libp2p, peer: PeerId): Promise<void> {
    try {
      // kad-dht keeps its closest peers alive; libp2p would dial this one straight back
      await libp2p.peerStore.merge(peer, { tags: { [KAD_KEEP_ALIVE_TAG]: undefined } }).catch(() => {})
      await libp2p.hangUp(peer, { signal: AbortSignal.timeout(2_000) })
      this.closed++
    } catch (err) {
      this.o.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'could not close an idle link')
    }
  }

  private async dialMissing (libp2p: Libp2p, plan: LinkPlan, byPeer: Map<string, Connection[]>, now: number): Promise<void> {
    const missing = [...plan.keep.keys()].filter(id => {
      if (byPeer.has(id) || !this.o.dialable(id)) return false
      const f = this.failures.get(id)
      // new addresses are worth a dial at once: while a network forms, a member is often first
      // heard of with an address it no longer listens on, and its right one comes a moment later
      return f === undefined || f.addrs !== this.o.addrsOf(id).join(' ') || now - f.at >= Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (f.count - 1))
    })
    for (const id of this.failures.keys()) if (!plan.keep.has(id)) this.failures.delete(id)
    await Promise.all(missing.slice(0, DIALS_PER_SWEEP).map(async id => { await this.dial(libp2p, id) }))
  }

  private async dial (libp2p: Libp2p, id: string): Promise<void> {
    let peer: PeerId
    const tried = this.o.addrsOf(id)
    try {
      peer = peerIdFromString(id)
      const addrs = tried.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } })
      if (addrs.length > 0) await libp2p.peerStore.merge(peer, { multiaddrs: addrs })
    } catch {
      return
    }
    try {
      await libp2p.dial(peer, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      this.failures.delete(id)
    } catch (err) {
      const f = this.failures.get(id)
      this.failures.set(id, { count: (f?.count ?? 0) + 1, at: this.now(), addrs: tried.join(' ') })
      this.o.log.debug({ peer: id, err: (err as Error).message }, 'could not reach a member this node keeps a link to')
    }
  }
}
