// Publishes this node's signed role advertisement on the network's roles topic and keeps
// the view of everyone else's. Invalid messages are counted and dropped, never applied.
// Departures (role-departure.ts) travel on the same topic: this node publishes one when a kept
// link to a peer breaks and does not come back within the grace, and when it stops itself.
import type { Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeRoleAdvertisement, decodeRoleAdvertisement, MAX_ADVERTISED_ADDRS, type RoleAdvertisement } from './role-advertisement.ts'
import { encodeRoleDeparture, decodeRoleDeparture, WitnessLimit, type RoleDeparture } from './role-departure.ts'
import type { RoleView } from './role-view.ts'
import { systemTimers, type RoleHost, type RolePubsub, type RoleLogger, type RoleTimer, type RoleTimers } from '../role-host.ts'

export interface RoleGossipOptions {
  host: Pick<RoleHost, 'peerId' | 'getMultiaddrs' | 'getConnections' | 'addEventListener' | 'removeEventListener'>
  pubsub: RolePubsub
  /** e.g. `mycelium/<networkId>/roles/1`. */
  topic: string
  /** The node's Ed25519 secret key (32 bytes); its peer id must match. */
  secretKey: Uint8Array
  view: RoleView
  now: () => number
  /** How long a peer that disconnected from us stays in the view without news. */
  suspectGraceMs: number
  log: RoleLogger
  /** Something in the view changed: a node joined, changed its advertisement, or left. */
  onChange: (why: string, kind: 'joined' | 'changed' | 'left') => void
  /** Default: the process's timers. */
  timers?: RoleTimers
  /**
   * Whether this node keeps a link to the peer (default: every link counts). Only a lost kept
   * link is evidence that a peer died: an on-demand link the topology closed is not, and must
   * not drop a live node from the view until its next refresh.
   */
  keepsLink?: (peerId: string) => boolean
  /** A departure named this node, which is alive: re-advertise at once. */
  onNamed?: () => void
  /** In [0, 1): the witnesses' random wait, which lets the first departure spare the others theirs. */
  random?: () => number
  /**
   * Default: decodeRoleAdvertisement. A pure function of (bytes, topic); a simulator that
   * delivers one message to thousands of in-process nodes decodes it once for all of them.
   */
  decode?: (bytes: Uint8Array, topic: string) => RoleAdvertisement
}

export type OwnAdvertisement = Omit<RoleAdvertisement, 'peerId' | 'seq' | 'issuedAt' | 'addrs'>

export class RoleGossip {
  private readonly options: RoleGossipOptions
  private seq = 0
  private readonly timers = new Set<RoleTimer>()
  readonly counters = { published: 0, accepted: 0, rejected: 0, ignored: 0, departuresSent: 0, departuresTaken: 0 }
  private readonly limit = new WitnessLimit()
  /** this node's last advertisement as published, handed to newcomers with the view */
  private lastBytes: Uint8Array | undefined
  private readonly onMessage = (evt: CustomEvent<Message>): void => { this.receive(evt.detail) }
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => { this.suspect(evt.detail.toString()) }

  constructor (options: RoleGossipOptions) {
    this.options = options
  }

  start (): void {
    this.options.pubsub.subscribe(this.options.topic)
    this.options.pubsub.addEventListener('message', this.onMessage)
    this.options.host.addEventListener('peer:disconnect', this.onDisconnect)
  }

  stop (): void {
    this.options.pubsub.removeEventListener('message', this.onMessage)
    this.options.host.removeEventListener('peer:disconnect', this.onDisconnect)
    try { this.options.pubsub.unsubscribe(this.options.topic) } catch {}
    for (const t of this.timers) (this.options.timers ?? systemTimers).clear(t)
    this.timers.clear()
  }

  private addrs (): string[] {
    const all = this.options.host.getMultiaddrs().map(a => a.toString()).filter(a => a.length <= 256)
    // direct addresses first: a hyphae dials these to reach its anchors
    all.sort((a, b) => Number(a.includes('/p2p-circuit')) - Number(b.includes('/p2p-circuit')))
    return all.slice(0, MAX_ADVERTISED_ADDRS)
  }

  /** The addresses the next advertisement will carry (a change is published at once). */
  currentAddrs (): string[] {
    return this.addrs()
  }

  /** This node's last advertisement as published, if any. */
  ownSigned (): Uint8Array | undefined {
    return this.lastBytes
  }

  /**
   * Signs and publishes this node's advertisement; returns it, whether any peer got it, and the
   * peers that got it directly (undefined when the pubsub does not say).
   */
  async publish (own: OwnAdvertisement): Promise<{ ad: RoleAdvertisement, sent: boolean, recipients?: string[] }> {
    const now = this.options.now()
    // never below the clock, so a restarted node's advertisements are newer than its old ones
    this.seq = Math.max(this.seq + 1, now)
    const ad: RoleAdvertisement = { ...own, peerId: this.options.host.peerId.toString(), seq: this.seq, issuedAt: now, addrs: this.addrs() }
    const bytes = encodeRoleAdvertisement(ad, this.options.secretKey, this.options.topic)
    this.lastBytes = bytes
    let sent = false
    let recipients: string[] | undefined
    try {
      const result = await this.options.pubsub.publish(this.options.topic, bytes) as { recipients?: unknown[] } | undefined
      // with no peer on the topic yet nobody heard it: the schedule tries again at the next tick
      recipients = result?.recipients?.map(String)
      sent = recipients === undefined || recipients.length > 0
      this.counters.published++
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'role advertisement not published')
    }
    return { ad, sent, recipients }
  }

  /** This node stops: its entry leaves every view now rather than when it ages out. */
  async leave (): Promise<void> {
    const self = this.options.host.peerId.toString()
    if (this.lastBytes !== undefined) await this.publishDeparture({ peerId: self, seq: this.seq, witness: self, issuedAt: this.options.now() })
  }

  private async publishDeparture (d: RoleDeparture): Promise<void> {
    try {
      await this.options.pubsub.publish(this.options.topic, encodeRoleDeparture(d, this.options.secretKey, this.options.topic))
      this.counters.departuresSent++
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'role departure not published')
    }
  }

  private receive (message: Message): void {
    if (message.topic !== this.options.topic) return
    this.take([message.data])
  }

  /**
   * Checks and applies advertisements (gossiped, or handed over by a peer's view: the same
   * checks) and departures; one change notice for the lot.
   */
  take (messages: Uint8Array[]): void {
    const self = this.options.host.peerId.toString()
    const joined: string[] = []
    const changed: string[] = []
    for (const data of messages) {
      let ad: RoleAdvertisement
      try {
        ad = (this.options.decode ?? decodeRoleAdvertisement)(data, this.options.topic)
      } catch (err) {
        if (!this.takeDeparture(data)) {
          this.counters.rejected++
          this.options.log.debug({ err: (err as Error).message }, 'dropped an invalid role advertisement')
        }
        continue
      }
      if (ad.peerId === self) continue
      const result = this.options.view.accept(ad, this.options.now(), data)
      if (result === 'new' || result === 'updated') {
        this.counters.accepted++
        if (result === 'new') joined.push(`${ad.peerId} joined as ${ad.role}`)
        else changed.push(`${ad.peerId} is now ${ad.role}`)
      } else if (result === 'refreshed') {
        this.counters.accepted++
      } else {
        this.counters.ignored++
      }
    }
    if (joined.length > 0) this.options.onChange([...joined, ...changed].slice(0, 3).join('; ') + (joined.length + changed.length > 3 ? ` (+${joined.length + changed.length - 3})` : ''), 'joined')
    else if (changed.length > 0) this.options.onChange(changed.slice(0, 3).join('; '), 'changed')
  }

  /** A departure, if `data` is a valid one; true when it was one (applied or not). */
  private takeDeparture (data: Uint8Array): boolean {
    let d: RoleDeparture
    try {
      d = decodeRoleDeparture(data, this.options.topic)
    } catch {
      return false
    }
    const self = this.options.host.peerId.toString()
    const now = this.options.now()
    const own = d.witness === d.peerId
    // a node's own leave is final; anyone else's word is rationed per witness (also what it
    // can make this node re-advertise), and a receiver believes its own link over it
    if (!own && !this.limit.take(d.witness, now)) {
      this.counters.ignored++
      return true
    }
    if (d.peerId === self || (!own && this.connected(d.peerId))) {
      this.counters.ignored++
      if (d.peerId === self && !own && d.seq >= this.seq) this.options.onNamed?.()
      return true
    }
    this.counters.departuresTaken++
    if (this.options.view.depart(d.peerId, d.seq)) this.options.onChange(`${d.peerId} left (${own ? 'it stopped' : `its link to ${d.witness} broke`})`, 'left')
    return true
  }

  private connected (peerId: string): boolean {
    try {
      return this.options.host.getConnections(peerIdFromString(peerId)).some(c => c.status === 'open')
    } catch {
      return false
    }
  }

  /**
   * A peer disconnected. If this node kept a link to it, and the link does not come back nor a
   * newer advertisement of it arrive within the grace (plus a random wait of up to one more
   * grace), it is gone here and this node tells the others, unless another witness told them
   * first (its departure removed the entry here already).
   */
  private suspect (peerId: string): void {
    if (this.options.keepsLink?.(peerId) === false) return
    const grace = this.options.suspectGraceMs
    const seq = this.options.view.get(peerId)?.seq
    if (seq === undefined) return
    const wait = grace + 10 + Math.floor(grace * (this.options.random ?? Math.random)())
    const timer = (this.options.timers ?? systemTimers).setTimeout(() => {
      this.timers.delete(timer)
      if (this.connected(peerId) || this.options.view.get(peerId)?.seq !== seq) return
      this.options.view.depart(peerId, seq)
      void this.publishDeparture({ peerId, seq, witness: this.options.host.peerId.toString(), issuedAt: this.options.now() })
      this.options.onChange(`lost ${peerId}`, 'left')
    }, wait)
    timer.unref?.()
    this.timers.add(timer)
  }
}
