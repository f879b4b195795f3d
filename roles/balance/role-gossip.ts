// Publishes this node's signed role advertisement on the network's roles topic and keeps
// the view of everyone else's. Invalid messages are counted and dropped, never applied.
import type { Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { encodeRoleAdvertisement, decodeRoleAdvertisement, MAX_ADVERTISED_ADDRS, type RoleAdvertisement } from './role-advertisement.ts'
import type { RoleView } from './role-view.ts'
import { systemTimers, type RoleHost, type RolePubsub, type RoleLogger, type RoleTimer, type RoleTimers } from '../role-host.ts'

export interface RoleGossipOptions {
  host: Pick<RoleHost, 'peerId' | 'getMultiaddrs' | 'addEventListener' | 'removeEventListener'>
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
  readonly counters = { published: 0, accepted: 0, rejected: 0, ignored: 0 }
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

  /** Signs and publishes this node's advertisement; returns it. */
  async publish (own: OwnAdvertisement): Promise<RoleAdvertisement> {
    const now = this.options.now()
    // never below the clock, so a restarted node's advertisements are newer than its old ones
    this.seq = Math.max(this.seq + 1, now)
    const ad: RoleAdvertisement = { ...own, peerId: this.options.host.peerId.toString(), seq: this.seq, issuedAt: now, addrs: this.addrs() }
    const bytes = encodeRoleAdvertisement(ad, this.options.secretKey, this.options.topic)
    try {
      await this.options.pubsub.publish(this.options.topic, bytes)
      this.counters.published++
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'role advertisement not published')
    }
    return ad
  }

  private receive (message: Message): void {
    if (message.topic !== this.options.topic) return
    let ad: RoleAdvertisement
    try {
      ad = (this.options.decode ?? decodeRoleAdvertisement)(message.data, this.options.topic)
    } catch (err) {
      this.counters.rejected++
      this.options.log.debug({ err: (err as Error).message }, 'dropped an invalid role advertisement')
      return
    }
    if (ad.peerId === this.options.host.peerId.toString()) return
    const result = this.options.view.accept(ad, this.options.now())
    if (result === 'new' || result === 'updated') {
      this.counters.accepted++
      if (result === 'new') this.options.onChange(`${ad.peerId} joined as ${ad.role}`, 'joined')
      else this.options.onChange(`${ad.peerId} is now ${ad.role}`, 'changed')
    } else if (result === 'refreshed') {
      this.counters.accepted++
    } else {
      this.counters.ignored++
    }
  }

  private suspect (peerId: string): void {
    const grace = this.options.suspectGraceMs
    if (!this.options.view.suspect(peerId, this.options.now(), grace)) return
    const timer = (this.options.timers ?? systemTimers).setTimeout(() => {
      this.timers.delete(timer)
      const gone = this.options.view.expire(this.options.now())
      if (gone.length > 0) this.options.onChange(`lost ${gone.join(', ')}`, 'left')
    }, grace + 10)
    timer.unref?.()
    this.timers.add(timer)
  }
}
