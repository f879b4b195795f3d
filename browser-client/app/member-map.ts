// The page's picture of the network: every member it has heard of, its role and addresses,
// and who is connected to whom (each roster names the sender's connected members).
import type { RosterEntry } from '../../membership/index.ts'

const MAX_MEMBERS = 256
/** members not confirmed by any roster for this long are dropped from the picture */
const FORGET_AFTER_MS = 20_000

export interface Member {
  peerId: string
  role: string
  addrs: string[]
  /** members this one reported being connected to */
  links: Set<string>
  heardAt: number
}

export class MemberMap {
  readonly members = new Map<string, Member>()

  private member (peerId: string, now: number): Member {
    let m = this.members.get(peerId)
    if (m === undefined) {
      m = { peerId, role: 'unknown', addrs: [], links: new Set(), heardAt: now }
      // past the bound, newcomers are described but not kept
      if (this.members.size < MAX_MEMBERS) this.members.set(peerId, m)
    }
    return m
  }

  /** A member told us about itself and its connected members. */
  heardFrom (peerId: string, presence: { role: string, addrs: string[] }, peers: RosterEntry[], now = Date.now()): void {
    const m = this.member(peerId, now)
    m.role = presence.role
    if (presence.addrs.length > 0) m.addrs = presence.addrs
    m.heardAt = now
    m.links = new Set(peers.map(p => p.peerId))
    for (const p of peers) {
      const other = this.member(p.peerId, now)
      if (p.role !== undefined && p.role !== 'unknown') other.role = p.role
      if (p.addrs.length > 0) other.addrs = p.addrs
      other.heardAt = now
    }
  }

  /** Assumed before any roster says otherwise: the node that served the invite is a sclerotium. */
  assume (peerId: string, role: string, addrs: string[], now = Date.now()): void {
    const m = this.member(peerId, now)
    if (m.role === 'unknown') m.role = role
    if (m.addrs.length === 0) m.addrs = addrs
  }

  forget (now = Date.now(), afterMs = FORGET_AFTER_MS, keep: Set<string> = new Set()): void {
    for (const [id, m] of this.members) {
      if (!keep.has(id) && now - m.heardAt > afterMs) this.members.delete(id)
    }
  }

  withRole (role: string): Member[] {
    return [...this.members.values()].filter(m => m.role === role)
  }
}
