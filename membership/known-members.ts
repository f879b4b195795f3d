// The members a node remembers, to dial them again after a restart or a partition. Only
// members whose certificate was checked enter (by handshake or by a roster chain), each
// with the expiry of that certificate; the book is capped, the oldest sightings go first,
// and a member not seen for MAX_AGE_MS or whose certificate expired is forgotten. Redials
// walk the whole book in turn, so every member is reached, not only the first few.

export const KNOWN_MEMBERS_MAX = 512
export const KNOWN_MEMBER_MAX_AGE_MS = 7 * 24 * 3600_000

export interface KnownMember {
  addrs: string[]
  /** when this node last heard of the member (handshake or roster) */
  seenAt: number
  /** when the member's certificate expires, when known */
  expiresAt?: number
  /** the role it was last heard with (a hint: the signed role advertisements decide) */
  role?: string
  /** the addresses came from the member itself, not from another member's roster */
  firstHand?: boolean
}

export interface Sighting {
  expiresAt?: number
  role?: string
  /** heard from the member itself (its handshake or its own roster presence) */
  firstHand?: boolean
}

export class KnownMembers {
  private readonly members = new Map<string, KnownMember>()
  private cursor = 0

  constructor (initial: Record<string, KnownMember> = {}, now = Date.now()) {
    for (const [peerId, member] of Object.entries(initial)) this.members.set(peerId, member)
    this.prune(now)
  }

  get size (): number {
    return this.members.size
  }

  get (peerId: string): KnownMember | undefined {
    return this.members.get(peerId)
  }

  /**
   * Records a sighting; returns false when nothing changed worth saving. Addresses a member
   * told itself are not replaced by what another member's roster says of it: a member could
   * otherwise point everybody's redials for someone else at an address of its choosing.
   */
  see (peerId: string, given: string[], now: number, sighting: Sighting | number = {}): boolean {
    if (given.length === 0) return false
    const s: Sighting = typeof sighting === 'number' ? { expiresAt: sighting } : sighting
    const before = this.members.get(peerId)
    const keepOwn = s.firstHand !== true && before?.firstHand === true && now - before.seenAt < KNOWN_MEMBER_MAX_AGE_MS
    const addrs = keepOwn ? before.addrs : given
    const expiresAt = s.expiresAt ?? before?.expiresAt
    const role = s.role ?? before?.role
    const firstHand = keepOwn || s.firstHand === true
    this.members.set(peerId, { addrs, seenAt: now, ...(expiresAt === undefined ? {} : { expiresAt }), ...(role === undefined ? {} : { role }), ...(firstHand ? { firstHand } : {}) })
    if (this.members.size > KNOWN_MEMBERS_MAX) this.evictOldest()
    return before === undefined || before.addrs.join() !== addrs.join() || before.role !== role || now - before.seenAt > 60_000
  }

  forget (peerId: string): boolean {
    return this.members.delete(peerId)
  }

  /** Drops members not seen for too long or whose certificate has expired. */
  prune (now: number): number {
    let dropped = 0
    for (const [peerId, m] of this.members) {
      if (now - m.seenAt > KNOWN_MEMBER_MAX_AGE_MS || (m.expiresAt !== undefined && m.expiresAt <= now)) {
        this.members.delete(peerId)
        dropped++
      }
    }
    while (this.members.size > KNOWN_MEMBERS_MAX) { this.evictOldest(); dropped++ }
    return dropped
  }

  /** The next `count` members that `wanted` accepts, continuing where the last call stopped. */
  nextRound (count: number, wanted: (peerId: string, member: KnownMember) => boolean): Array<[string, KnownMember]> {
    const all = [...this.members].filter(([id, m]) => wanted(id, m))
    if (all.length === 0) return []
    const start = this.cursor % all.length
    const round = [...all.slice(start), ...all.slice(0, start)].slice(0, count)
    this.cursor = start + round.length
    return round
  }

  entries (): Array<[string, KnownMember]> {
    return [...this.members]
  }

  toJSON (): Record<string, KnownMember> {
    return Object.fromEntries(this.members)
  }

  private evictOldest (): void {
    let oldest: string | undefined
    let at = Infinity
    for (const [peerId, m] of this.members) if (m.seenAt < at) { at = m.seenAt; oldest = peerId }
    if (oldest !== undefined) this.members.delete(oldest)
  }
}
