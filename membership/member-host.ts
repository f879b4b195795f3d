// A member of one network on one libp2p host: the daemon, a bridge (as a guest in the other
// network) and a browser tab all use it, so the rules are written once.
//
// It owns the handshake policy and the verified set: who proved membership, with which
// certificate chain, until when. Membership is not forever: a peer stops being verified the
// moment its certificate expires or it is revoked, and its connections are closed then (the
// handshake alone would let an open connection outlive its certificate). It runs the roster
// exchange (every peer named in a roster must come with its own certificate chain), keeps
// the book of known members (capped and aged) and dials them again in turn. Given the roles
// (`links`), it keeps only the links the roles call for (link-policy.ts, link-keeper.ts)
// instead of dialling every member it learns of: the tiered mesh, not a full one.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, Libp2p } from '@libp2p/interface'
import { encodeChain, verifyChain, type CertificateChain } from './certificate.ts'
import { toBase64Url } from '../crypto/index.ts'
import type { AdmissionRequest, MembershipCredentials, MembershipPolicy } from './handshake.ts'
import { MembershipRefusedError, rejectionKind, type RejectionKind } from './errors.ts'
import { protocolPrefix } from './network-id.ts'
import { Roster, rosterProtocol, rosterPage, type Presence, type RosterEntry } from './roster.ts'
import { KnownMembers, type KnownMember } from './known-members.ts'
import { chooseLinks, type LinkCandidate, type LinkPlan } from './link-policy.ts'
import { LinkKeeper, type LinkReport } from './link-keeper.ts'
import type { MemberLog } from './member-log.ts'

const REJECTIONS_KEPT = 100
const SWEEP_INTERVAL_MS = 1_000
const REDIAL_INTERVAL_MS = 5_000
const REDIAL_PER_ROUND = 16
const LEARNED_DIALS_PER_ROSTER = 16
const DIAL_TIMEOUT_MS = 10_000
// The book is what a node dials after a crash: saved a second after it changes (off the event
// loop, see scheduleSave), so a member learned just before a SIGKILL is still dialled after it
const SAVE_DELAY_MS = 1_000
const VOUCHED_KEPT = 1_024
/** Addresses a roster repeats are put in the peer store again after this long (it may have dropped them). */
const RESTORE_ADDRS_MS = 60_000
/** A member heard of (in a roster) this recently counts as live for the link policy. */
const HEARD_LIVE_MS = 10 * 60_000

export interface RejectedConnection {
  peerId: string
  reason: string
  kind: RejectionKind
  /** true when the other side refused this host (then `kind` is the class of its reason) */
  byPeer: boolean
  at: number
}

export interface MemberView {
  peerId: string
  addrs: string[]
  role: string
}

export type DepartureReason = 'expired' | 'revoked'

/** What the link policy needs from the roles: this node's role and everyone's advertised one. */
export interface LinkRoles {
  /** this node's role; undefined while it is still being decided */
  role: () => string | undefined
  /** live members with the role and addresses of their signed advertisement */
  advertised: () => Array<{ peerId: string, role: string, addrs: string[] }>
  /** true for a sclerotium of the certified committee (ranks before merely claimed ones) */
  vouched?: (peerId: string) => boolean
  /** how often links are checked (default LINK_SWEEP_MS) */
  sweepMs?: number
  /** how long an unwanted link this node opened may sit idle before it is closed (default IDLE_GRACE_MS) */
  idleGraceMs?: number
}

export interface MemberHostOptions {
  networkId: string
  rootPublicKey: Uint8Array
  credentials: () => MembershipCredentials
  isRevoked: (peerId: string) => boolean
  /** inviter side: turns an admission request into the new member's chain */
  admit?: (request: AdmissionRequest) => Promise<CertificateChain>
  /** joiner side: the chain the inviter issued */
  onAdmitted?: (chain: CertificateChain) => Promise<void>
  /** this host's own role and addresses, told in rosters */
  presence: () => Presence
  /** pass the members this host is connected to on in rosters (a bridge, a guest, does not) */
  shareRoster?: boolean
  /** ask for rosters over relayed (limited) connections too */
  rosterOnLimited?: boolean
  /** dial members named in a roster at once (a daemon does; a browser tab picks its own) */
  dialLearned?: boolean
  /** remembered members: loaded at start, saved when they change (`final`: the last save, at detach) */
  known?: { initial: Record<string, KnownMember>, save: (members: Record<string, KnownMember>, final: boolean) => void | Promise<void> }
  /** dial members again every few seconds: the bootstrap addresses and what this host can dial */
  redial?: { bootstrap: () => string[], dialable: (addr: string) => boolean, intervalMs?: number }
  /** keep the links the roles call for (replaces `dialLearned` and the redial rounds while connected) */
  links?: LinkRoles
  now?: () => number
  log: MemberLog
}

interface Verified {
  chain: CertificateChain
  expiresAt: number
  since: number
}

type Listener<A extends unknown[]> = (...args: A) => void

/** The earliest expiry in a chain: the chain is only as valid as its weakest link. */
export function chainExpiry (chain: CertificateChain): number {
  return Math.min(...chain.map(c => c.expiresAt))
}

export class MemberHost {
  readonly policy: MembershipPolicy
  private readonly o: MemberHostOptions
  private readonly verified = new Map<string, Verified>()
  private readonly presence = new Map<string, Presence>()
  private readonly rejections: RejectedConnection[] = []
  private readonly known: KnownMembers
  /** chains already checked: a browser tab re-reads rosters every few seconds */
  private readonly vouched = new Map<string, { peerId: string, expiresAt: number }>()
  /** members proven by a roster's chain: when each one's chain expires */
  private readonly vouchedMembers = new Map<string, number>()
  /** the addresses last put in the peer store for a member learned from rosters, and when */
  private readonly storedAddrs = new Map<string, { addrs: string, at: number }>()
  private readonly listeners = {
    verified: [] as Array<Listener<[string, number]>>,
    departed: [] as Array<Listener<[string, DepartureReason]>>,
    roster: [] as Array<Listener<[string, Presence, RosterEntry[]]>>,
    rejected: [] as Array<Listener<[RejectedConnection]>>
  }

  private libp2p?: Libp2p
  private roster?: Roster
  private timers: Array<ReturnType<typeof setInterval>> = []
  private saveTimer?: ReturnType<typeof setTimeout>
  /** the save under way, if one is */
  private saving?: Promise<void>
  private detached = false
  private keeper?: LinkKeeper
  private rosterCursor = 0
  private readonly onOpen = (evt: CustomEvent<Connection>): void => { this.opened(evt.detail) }

  constructor (options: MemberHostOptions) {
    this.o = options
    this.known = new KnownMembers(options.known?.initial ?? {}, this.now())
    if (options.links !== undefined) {
      this.keeper = new LinkKeeper({
        plan: () => this.linkPlan(),
        addrsOf: (peerId) => this.addrsOf(peerId),
        dialable: (peerId) => !this.o.isRevoked(peerId) && peerId !== this.libp2p?.peerId.toString(),
        now: () => this.now(),
        ...(options.links.sweepMs === undefined ? {} : { intervalMs: options.links.sweepMs }),
        ...(options.links.idleGraceMs === undefined ? {} : { idleGraceMs: options.links.idleGraceMs }),
        log: options.log
      })
    }
    this.policy = {
      networkId: options.networkId,
      rootPublicKey: options.rootPublicKey,
      credentials: options.credentials,
      isRevoked: options.isRevoked,
      now: () => this.now(),
      ...(options.admit === undefined ? {} : { admit: options.admit }),
      ...(options.onAdmitted === undefined ? {} : { onAdmitted: options.onAdmitted }),
      onVerified: (peerId, chain) => { this.verify(peerId, chain) },
      onRejected: (peerId, reason, error) => { this.reject(peerId, reason, error) }
    }
  }

  private now (): number {
    return this.o.now?.() ?? Date.now()
  }

  /** A member now: verified, certificate unexpired, not revoked. */
  isVerified (peerId: string): boolean {
    const v = this.verified.get(peerId)
    return v !== undefined && v.expiresAt > this.now() && !this.o.isRevoked(peerId)
  }

  isRevoked (peerId: string): boolean {
    return this.o.isRevoked(peerId)
  }

  /** When the peer's verified certificate expires; undefined when it is not verified. */
  expiryOf (peerId: string): number | undefined {
    return this.isVerified(peerId) ? this.verified.get(peerId)?.expiresAt : undefined
  }

  /**
   * When the peer's membership expires, as far as this node can prove it: its own handshake, or
   * a certificate chain a roster carried (checked against the root key). A node of a tiered
   * mesh links to a few members only, and must still accept the signed entries of all the
   * others (a rhizomorph never meets another rhizomorph).
   */
  memberExpiry (peerId: string): number | undefined {
    const verified = this.expiryOf(peerId)
    if (verified !== undefined) return verified
    const vouched = this.vouchedMembers.get(peerId)
    return vouched !== undefined && vouched > this.now() && !this.o.isRevoked(peerId) ? vouched : undefined
  }

  chainOf (peerId: string): CertificateChain | undefined {
    return this.isVerified(peerId) ? this.verified.get(peerId)?.chain : undefined
  }

  onVerified (listener: (peerId: string, expiresAt: number) => void): void { this.listeners.verified.push(listener) }
  /** A verified peer stopped being a member: its certificate expired or it was revoked. */
  onDeparted (listener: (peerId: string, why: DepartureReason) => void): void { this.listeners.departed.push(listener) }
  onRoster (listener: (from: string, presence: Presence, entries: RosterEntry[]) => void): void { this.listeners.roster.push(listener) }
  onRejected (listener: (rejection: RejectedConnection) => void): void { this.listeners.rejected.push(listener) }

  rejected (): RejectedConnection[] {
    return [...this.rejections]
  }

  presenceOf (peerId: string): Presence | undefined {
    return this.presence.get(peerId)
  }

  /** Connected members (verified now), with the addresses and role they told. */
  peers (): MemberView[] {
    const libp2p = this.libp2p
    if (libp2p === undefined) return []
    const out: MemberView[] = []
    for (const peer of libp2p.getPeers()) {
      const id = peer.toString()
      if (!this.isVerified(id)) continue
      const presence = this.presence.get(id)
      out.push({ peerId: id, addrs: presence?.addrs ?? libp2p.getConnections(peer).map(c => c.remoteAddr.toString()), role: presence?.role ?? 'unknown' })
    }
    return out
  }

  knownMembers (): Array<[string, KnownMember]> {
    return this.known.entries()
  }

  /** Starts the roster, the expiry sweep and the redial loop on a started host. */
  async attach (libp2p: Libp2p): Promise<void> {
    this.libp2p = libp2p
    this.roster = new Roster({
      libp2p,
      protocol: rosterProtocol(protocolPrefix(this.o.networkId)),
      presence: this.o.presence,
      connectedMembers: () => this.o.shareRoster === false ? [] : this.rosterEntries(),
      vouch: (peerId, chain) => this.vouch(peerId, chain),
      onRoster: (from, presence, entries) => { this.heard(from, presence, entries) },
      log: this.o.log,
      now: () => this.now()
    })
    await this.roster.start()
    libp2p.addEventListener('connection:open', this.onOpen)
    this.timers.push(setInterval(() => { this.sweep() }, SWEEP_INTERVAL_MS))
    if (this.o.redial !== undefined) {
      this.timers.push(setInterval(() => { void this.redial() }, this.o.redial.intervalMs ?? REDIAL_INTERVAL_MS))
      void this.redial()
    }
    for (const t of this.timers) (t as { unref?: () => void }).unref?.()
    this.keeper?.start(libp2p)
  }

  /** True when this host keeps a link to the member (always, without a link policy). */
  keepsLink (peerId: string): boolean {
    return this.keeper === undefined || this.linkPlan().keep.has(peerId)
  }

  /** The links the policy keeps now; undefined without a link policy. */
  links (): LinkReport | undefined {
    return this.keeper?.report()
  }

  /**
   * The link plan over the members known to be live: those advertising a role, those
   * connected, and those named in a roster lately. Roles: the signed advertisement, else
   * what the member said itself, else what a roster said of it.
   */
  linkPlan (): LinkPlan {
    const links = this.o.links
    const self = this.libp2p?.peerId.toString() ?? ''
    if (links === undefined) return { keep: new Map(), members: 1 }
    const now = this.now()
    const advertised = links.advertised()
    // once advertisements arrive they alone name the roles of members not connected: a roster's
    // word on a member that has since died would keep it a sclerotium to link to for minutes
    const hints = advertised.length === 0
    const roles = new Map<string, string | undefined>()
    for (const [id, m] of this.known.entries()) if (now - m.seenAt < HEARD_LIVE_MS && !this.o.isRevoked(id)) roles.set(id, hints ? m.role : undefined)
    for (const p of this.peers()) roles.set(p.peerId, p.role === 'unknown' ? roles.get(p.peerId) : p.role)
    for (const a of advertised) if (!this.o.isRevoked(a.peerId)) roles.set(a.peerId, a.role)
    roles.delete(self)
    const members: LinkCandidate[] = [...roles].map(([peerId, role]) => role === undefined ? { peerId } : { peerId, role })
    const connected = new Set(this.libp2p?.getPeers().map(p => p.toString()) ?? [])
    return chooseLinks({ self, role: links.role(), members, connected, ...(links.vouched === undefined ? {} : { vouched: links.vouched }) })
  }

  private addrsOf (peerId: string): string[] {
    const dialable = this.o.redial?.dialable ?? (() => true)
    const advertised = this.o.links?.advertised().find(a => a.peerId === peerId)?.addrs ?? []
    const all = [...(this.presence.get(peerId)?.addrs ?? []), ...advertised, ...(this.known.get(peerId)?.addrs ?? [])]
    return [...new Set(all)].filter(dialable).slice(0, 16)
  }

  /** Asks every connected member for its roster again. */
  refreshRosters (): void {
    const libp2p = this.libp2p
    if (libp2p === undefined) return
    const asked = new Set<string>()
    for (const connection of libp2p.getConnections()) {
      const id = connection.remotePeer.toString()
      if (asked.has(id) || !this.isVerified(id) || (connection.limits !== undefined && this.o.rosterOnLimited === false)) continue
      asked.add(id)
      void this.roster?.exchange(connection.remotePeer)
    }
  }

  async detach (): Promise<void> {
    this.detached = true
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.keeper?.stop()
    this.libp2p?.removeEventListener('connection:open', this.onOpen)
    await this.roster?.stop()
    if (this.saveTimer !== undefined) { clearTimeout(this.saveTimer); this.saveTimer = undefined }
    await this.saving
    this.save(true)
  }

  // --- verified set -------------------------------------------------------------------

  private verify (peerId: string, chain: CertificateChain): void {
    const expiresAt = chainExpiry(chain)
    this.verified.set(peerId, { chain, expiresAt, since: this.now() })
    for (const l of this.listeners.verified) l(peerId, expiresAt)
  }

  private reject (peerId: string, reason: string, error: Error): void {
    const rejection = { peerId, reason, kind: rejectionKind(error), byPeer: error instanceof MembershipRefusedError, at: this.now() }
    this.rejections.push(rejection)
    if (this.rejections.length > REJECTIONS_KEPT) this.rejections.shift()
    for (const l of this.listeners.rejected) l(rejection)
  }

  /** Ends membership that ran out: expired or revoked peers lose their connections at once. */
  sweep (): void {
    const now = this.now()
    for (const [peerId, v] of this.verified) {
      const why: DepartureReason | undefined = this.o.isRevoked(peerId) ? 'revoked' : v.expiresAt <= now ? 'expired' : undefined
      if (why === undefined) continue
      this.verified.delete(peerId)
      this.presence.delete(peerId)
      this.o.log.info({ peer: peerId, why }, 'membership ended: closing its connections')
      void this.hangUp(peerId)
      for (const l of this.listeners.departed) l(peerId, why)
    }
    if (this.known.prune(now) > 0) this.scheduleSave()
  }

  private async hangUp (peerId: string): Promise<void> {
    try {
      await this.libp2p?.hangUp(peerIdFromString(peerId))
    } catch (err) {
      this.o.log.debug({ peer: peerId, err: (err as Error).message }, 'could not close a connection')
    }
  }

  // --- roster ---------------------------------------------------------------------------

  private opened (connection: Connection): void {
    const libp2p = this.libp2p
    if (libp2p === undefined || this.detached) return
    if (connection.limits !== undefined && this.o.rosterOnLimited === false) return
    // One exchange tells both sides, so the side that dialled starts it: when both started one,
    // every new link cost two streams, two rosters encoded and read, and two rounds of
    // certificate checks. On a relayed (limited) link the dialler may be a page that asks for no
    // roster there, so both sides still start one.
    if (connection.direction === 'inbound' && connection.limits === undefined) return
    // the first connection to a member starts a roster exchange
    if (libp2p.getConnections(connection.remotePeer).length === 1) void this.roster?.exchange(connection.remotePeer)
  }

  /**
   * One page (rosterPage) of the members this host is connected to. A member that has not told
   * its addresses yet is named with those this host dialled it at: the far end of a link it
   * dialled this host from is a passing port nobody can dial, and a member that learned it
   * failed its dials and waited out a backoff before trying the right one.
   */
  private rosterEntries (): RosterEntry[] {
    const libp2p = this.libp2p
    const all = this.peers().flatMap(p => {
      const chain = this.chainOf(p.peerId)
      if (chain === undefined) return []
      const addrs = this.presence.get(p.peerId)?.addrs ?? libp2p?.getConnections(peerIdFromString(p.peerId)).filter(c => c.direction === 'outbound').map(c => c.remoteAddr.toString()) ?? []
      return [{ peerId: p.peerId, addrs, role: p.role, chain }]
    })
    const { page, next } = rosterPage(all, this.rosterCursor)
    this.rosterCursor = next
    return page
  }

  /** A roster's entry counts only when its chain proves a current member of this network. */
  private vouch (peerId: string, chain: CertificateChain): boolean {
    const now = this.now()
    // the whole encoded chain is the key: a copied signature on changed content must miss
    const key = encodeChain(chain).map(toBase64Url).join('.')
    const cached = this.vouched.get(key)
    if (cached !== undefined) {
      const holds = cached.peerId === peerId && cached.expiresAt > now && !this.o.isRevoked(peerId)
      if (holds && !this.vouchedMembers.has(peerId)) this.rememberVouched(peerId, cached.expiresAt)
      return holds
    }
    let subject: string
    try {
      subject = verifyChain(chain, { networkId: this.o.networkId, rootPublicKey: this.o.rootPublicKey, now, isRevoked: this.o.isRevoked })
    } catch {
      return false
    }
    this.vouched.set(key, { peerId: subject, expiresAt: chainExpiry(chain) })
    if (this.vouched.size > VOUCHED_KEPT) this.vouched.delete(this.vouched.keys().next().value as string)
    if (subject !== peerId) return false
    this.rememberVouched(subject, chainExpiry(chain))
    return true
  }

  private rememberVouched (peerId: string, expiresAt: number): void {
    this.vouchedMembers.delete(peerId)
    this.vouchedMembers.set(peerId, expiresAt)
    if (this.vouchedMembers.size > VOUCHED_KEPT) this.vouchedMembers.delete(this.vouchedMembers.keys().next().value as string)
  }

  private heard (from: string, presence: Presence, entries: RosterEntry[]): void {
    if (!this.isVerified(from)) return
    this.presence.set(from, presence)
    const now = this.now()
    let changed = this.known.see(from, presence.addrs, now, { expiresAt: this.verified.get(from)?.expiresAt, role: presence.role, firstHand: true })
    const self = this.libp2p?.peerId.toString()
    const learned = entries.filter(e => e.peerId !== self)
    for (const e of learned) changed = this.known.see(e.peerId, e.addrs, now, { expiresAt: e.chain === undefined ? undefined : chainExpiry(e.chain), role: e.role }) || changed
    if (changed) this.scheduleSave()
    for (const l of this.listeners.roster) l(from, presence, learned)
    if (this.keeper !== undefined) {
      // the links the roles call for are dialled now; the others are only remembered, and
      // their addresses go to the peer store so a feature can dial them when it needs to
      void this.storeAddrs(learned)
      void this.keeper.sweep()
    } else if (this.o.dialLearned === true) {
      const libp2p = this.libp2p
      const missing = learned.filter(e => e.addrs.length > 0 && libp2p !== undefined && libp2p.getConnections(peerIdFromString(e.peerId)).length === 0)
      // the rest are reached by the redial rounds
      for (const e of missing.slice(0, LEARNED_DIALS_PER_ROSTER)) void this.dialMember(e.peerId, e.addrs)
    }
  }

  // --- redial ---------------------------------------------------------------------------

  private async storeAddrs (entries: RosterEntry[]): Promise<void> {
    const libp2p = this.libp2p
    const dialable = this.o.redial?.dialable ?? (() => true)
    if (libp2p === undefined) return
    for (const e of entries) {
      const addrs = this.known.get(e.peerId)?.addrs.filter(dialable) ?? []
      if (addrs.length === 0 || this.o.isRevoked(e.peerId)) continue
      // every roster names most members again: a merge of the same addresses rewrites the
      // peer's whole record in the peer store for nothing, so it is skipped for a while
      const stored = addrs.join(' ')
      const now = this.now()
      const last = this.storedAddrs.get(e.peerId)
      if (last !== undefined && last.addrs === stored && now - last.at < RESTORE_ADDRS_MS) continue
      try {
        await libp2p.peerStore.merge(peerIdFromString(e.peerId), { multiaddrs: addrs.map(a => multiaddr(a)) })
        this.storedAddrs.delete(e.peerId)
        this.storedAddrs.set(e.peerId, { addrs: stored, at: now })
        if (this.storedAddrs.size > VOUCHED_KEPT) this.storedAddrs.delete(this.storedAddrs.keys().next().value as string)
      } catch {}
    }
  }

  private async dialMember (peerId: string, addrs: string[]): Promise<void> {
    const libp2p = this.libp2p
    if (libp2p === undefined || this.detached || addrs.length === 0 || this.o.isRevoked(peerId)) return
    try {
      const id = peerIdFromString(peerId)
      await libp2p.peerStore.merge(id, { multiaddrs: addrs.map(a => multiaddr(a)) })
      await libp2p.dial(id, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
    } catch (err) {
      this.o.log.debug({ peer: peerId, err: (err as Error).message }, 'could not dial member')
    }
  }

  /**
   * Rejoin after restarts and partitions. While connected, the next few known members that
   * are not connected are dialled, in turn, so every member is reached over a few rounds
   * (with a link policy, the link keeper dials what the roles call for instead). While alone,
   * known members and the bootstrap addresses are dialled.
   */
  private async redial (): Promise<void> {
    const libp2p = this.libp2p
    const redial = this.o.redial
    if (libp2p === undefined || redial === undefined || this.detached) return
    const self = libp2p.peerId.toString()
    const connected = new Set(libp2p.getPeers().map(p => p.toString()))
    if (this.keeper !== undefined && connected.size > 0) return
    const round = this.known.nextRound(REDIAL_PER_ROUND, (peerId, m) => peerId !== self && !connected.has(peerId) && !this.o.isRevoked(peerId) && m.addrs.some(redial.dialable))
    const dials: Array<Promise<unknown>> = round.map(async ([peerId, m]) => { await this.dialMember(peerId, m.addrs.filter(redial.dialable)) })
    if (connected.size === 0) {
      for (const addr of redial.bootstrap()) {
        let target
        try { target = multiaddr(addr) } catch { continue }
        dials.push(libp2p.dial(target, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) }).catch(() => {}))
      }
    }
    await Promise.all(dials)
  }

  /** Remembers a member seen by other means (its own handshake, a signed node entry). */
  remember (peerId: string, addrs: string[]): void {
    if (peerId === this.libp2p?.peerId.toString()) return
    if (this.known.see(peerId, addrs, this.now(), { expiresAt: this.verified.get(peerId)?.expiresAt, firstHand: true })) this.scheduleSave()
  }

  private scheduleSave (): void {
    if (this.o.known === undefined || this.saveTimer !== undefined || this.detached) return
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined
      // one write at a time: a save still under way is followed by another later
      if (this.saving !== undefined) this.scheduleSave()
      else this.save(false)
    }, SAVE_DELAY_MS)
  }

  private save (final: boolean): void {
    const failed = (err: Error): void => { this.o.log.warn({ err: err.message }, 'could not save known members') }
    try {
      const written = this.o.known?.save(this.known.toJSON(), final)
      if (written instanceof Promise) this.saving = written.catch(failed).finally(() => { this.saving = undefined })
    } catch (err) {
      failed(err as Error)
    }
  }
}
