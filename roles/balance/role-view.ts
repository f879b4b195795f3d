// Each node's view of the network's roles: the newest valid advertisement of every node,
// dropped when it is not refreshed in time. A peer that disconnects from us is only
// suspected: it stays until a short grace passes without news, since it may still be
// alive and reachable through others. A departure notice (role-departure.ts) drops the entry
// it names at once. Ageing is this node's own rule (ttlMs from receipt), whatever the sender
// does: an entry lives at most ttlMs after the last advertisement of it arrived, and since an
// advertisement is accepted only within maxSkewMs of its issuedAt and only once per seq, no
// relay or replay keeps a dead node's entry beyond issuedAt + maxSkewMs + ttlMs.
import type { RoleAdvertisement } from './role-advertisement.ts'
import type { Role } from '../policy/role.ts'

export interface RoleViewOptions {
  /** An advertisement not refreshed within this long (by our clock) is dropped. */
  ttlMs: number
  /**
   * How far issuedAt may lie from our clock either way. Freshness is judged by receipt, not
   * by the sender's clock (clocks of small devices drift); this only bounds replays.
   */
  maxSkewMs: number
  /** Bound on tracked nodes, so a flood of identities cannot grow memory. */
  maxNodes: number
}

export type Acceptance = 'new' | 'updated' | 'refreshed' | 'stale' | 'expired' | 'future' | 'full'

interface Entry {
  ad: RoleAdvertisement
  expiresAt: number
  /** the signed bytes as received, so a newcomer can be handed them verbatim (role-view-sync.ts) */
  bytes?: Uint8Array
}

export class RoleView {
  private readonly entries = new Map<string, Entry>()
  // kept after expiry so an old advertisement cannot be replayed back in
  private readonly lastSeq = new Map<string, number>()
  private readonly options: RoleViewOptions

  constructor (options: RoleViewOptions) {
    this.options = options
  }

  accept (ad: RoleAdvertisement, now: number, bytes?: Uint8Array): Acceptance {
    if (ad.issuedAt > now + this.options.maxSkewMs) return 'future'
    if (ad.issuedAt < now - this.options.maxSkewMs) return 'expired'
    const last = this.lastSeq.get(ad.peerId)
    if (last !== undefined && ad.seq <= last) return 'stale'
    const previous = this.entries.get(ad.peerId)
    if (previous === undefined && this.entries.size >= this.options.maxNodes) return 'full'
    this.lastSeq.set(ad.peerId, ad.seq)
    if (this.lastSeq.size > this.options.maxNodes * 4) this.lastSeq.delete(this.lastSeq.keys().next().value as string)
    this.entries.set(ad.peerId, { ad, expiresAt: now + this.options.ttlMs, bytes })
    if (previous === undefined) return 'new'
    return previous.ad.role !== ad.role || previous.ad.dedicated !== ad.dedicated || previous.ad.score !== ad.score || previous.ad.fit !== ad.fit || previous.ad.movable !== ad.movable ? 'updated' : 'refreshed'
  }

  /** Shortens the life of a peer's entry (it disconnected from us). */
  suspect (peerId: string, now: number, graceMs: number): boolean {
    const entry = this.entries.get(peerId)
    if (entry === undefined) return false
    entry.expiresAt = Math.min(entry.expiresAt, now + graceMs)
    return true
  }

  /**
   * A departure: drops the peer's entry if it is advertisement `seq` or older, and refuses
   * that advertisement and older ones from now on (a replay cannot bring it back). True when
   * an entry was dropped.
   */
  depart (peerId: string, seq: number): boolean {
    const last = this.lastSeq.get(peerId)
    if (last === undefined || last < seq) {
      this.lastSeq.set(peerId, seq)
      if (this.lastSeq.size > this.options.maxNodes * 4) this.lastSeq.delete(this.lastSeq.keys().next().value as string)
    }
    const entry = this.entries.get(peerId)
    if (entry === undefined || entry.ad.seq > seq) return false
    this.entries.delete(peerId)
    return true
  }

  /** The signed bytes of every entry held, for a newcomer's catch-up. */
  signed (): Uint8Array[] {
    return [...this.entries.values()].flatMap(e => e.bytes === undefined ? [] : [e.bytes])
  }

  /** Drops expired entries; returns the peers that left. */
  expire (now: number): string[] {
    const gone: string[] = []
    for (const [peerId, entry] of this.entries) {
      if (entry.expiresAt <= now) {
        this.entries.delete(peerId)
        gone.push(peerId)
      }
    }
    return gone
  }

  nextExpiry (): number | undefined {
    let next: number | undefined
    for (const e of this.entries.values()) if (next === undefined || e.expiresAt < next) next = e.expiresAt
    return next
  }

  remove (peerId: string): void {
    this.entries.delete(peerId)
  }

  get (peerId: string): RoleAdvertisement | undefined {
    return this.entries.get(peerId)?.ad
  }

  advertisements (): RoleAdvertisement[] {
    return [...this.entries.values()].map(e => e.ad)
  }

  counts (): Record<Role, number> {
    const counts: Record<Role, number> = { sclerotium: 0, rhizomorph: 0, hyphae: 0 }
    for (const { ad } of this.entries.values()) counts[ad.role]++
    return counts
  }

  get size (): number {
    return this.entries.size
  }
}
