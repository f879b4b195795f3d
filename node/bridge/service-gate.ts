// What a bridge checks before it carries a service record into the other network: the same
// store-free rules the spores merge by (signature, owner, origin a member of the network the
// record comes from, expiry, clock skew), then the version rule on an in-memory view of what
// it already carried (a replay or an older version is not carried again). The bridge re-signs
// what it carries, so anything it did not check here would enter the other network with the
// bridge's own signature on it.
import { checkEntry, decodeEntry, entryId, compareVersions, DEFAULT_LIMITS, type SignedEntry, type SporeLimits } from '../../spores/index.ts'

/** How many records' versions one direction remembers; the oldest is forgotten first. */
const REMEMBERED = 4096

/** `carried`: the record was one the bridge would carry, and failed the checks (it is counted as refused). */
export type GateVerdict =
  | { ok: true, entry: SignedEntry<'service'> }
  | { ok: false, reason: string, carried: boolean }

export class ServiceRecordGate {
  private readonly isMember: (peerId: string) => boolean
  private readonly limits: SporeLimits
  private readonly clock: () => number
  private readonly carried = new Map<string, { seq: number, issuedAt: number, sig: Uint8Array }>()

  constructor (options: { isMember: (peerId: string) => boolean, limits?: SporeLimits, clock?: () => number }) {
    this.isMember = options.isMember
    this.limits = options.limits ?? DEFAULT_LIMITS
    this.clock = options.clock ?? Date.now
  }

  /**
   * Decodes one gossiped entry; a service record the bridge `carries` (by name, label, origin) is then
   * checked as the spores would merge it, and must be newer than any version carried before.
   * Everything else is passed over before its signature is even checked.
   */
  check (bytes: Uint8Array, carries: (record: SignedEntry<'service'>) => boolean): GateVerdict {
    let decoded: SignedEntry
    try {
      decoded = decodeEntry(bytes)
    } catch {
      return { ok: false, reason: 'malformed', carried: false }
    }
    if (decoded.type !== 'service' || !carries(decoded as SignedEntry<'service'>)) return { ok: false, reason: 'not-carried', carried: false }
    // trust entries never cross, so no committee or root may write anything here
    const checked = checkEntry(decoded, this.clock(), { trust: { committee: () => new Set() }, limits: this.limits, isMember: this.isMember })
    if (!checked.ok) return { ok: false, reason: checked.reason, carried: true }
    const entry = checked.entry as SignedEntry<'service'>
    const last = this.carried.get(entryId(entry.type, entry.key))
    if (last !== undefined && compareVersions(entry, last) <= 0) return { ok: false, reason: 'replay', carried: true }
    return { ok: true, entry }
  }

  /** Records that this version was carried, so it and older ones are not carried again. */
  carry (entry: SignedEntry<'service'>): void {
    const id = entryId(entry.type, entry.key)
    this.carried.delete(id)
    this.carried.set(id, { seq: entry.seq, issuedAt: entry.issuedAt, sig: entry.sig })
    if (this.carried.size > REMEMBERED) this.carried.delete(this.carried.keys().next().value as string)
  }
}
