// Why an incoming entry was not merged. Every rejection is counted per tier, type and
// reason; the daemon turns the counts into a Prometheus counter through RejectionSink.
export const REJECTION_REASONS = [
  'oversized', // larger than MAX_ENTRY_BYTES
  'malformed', // not canonical CBOR [body, sig]
  'schema', // fields or value do not match the type's schema (or unknown type)
  'bad-signature', // signature does not verify against the origin's key
  'unauthorized-origin', // the origin may not speak for this key
  'unknown-origin', // the origin is not a member (when a membership check is injected)
  'expired', // expiresAt is in the past
  'outside-window', // temporal entry issued before the window
  'future', // issuedAt too far ahead of the local clock
  'limit', // the type's maximum entry count is reached
  'origin-limit', // the origin already holds its share of the type (limits.ts originQuota)
  'higher-tier-conflict', // contradicts a higher tier and is not a newer version by the owner
  'replay' // same or lower version than the one held
] as const
export type RejectionReason = typeof REJECTION_REASONS[number]

export interface RejectionSink {
  rejected: (tier: string, type: string, reason: RejectionReason) => void
}

/** Counts kept in memory for `mycelium spores stats`. */
export class RejectionCounts implements RejectionSink {
  private readonly counts = new Map<string, Map<string, Map<RejectionReason, number>>>()

  rejected (tier: string, type: string, reason: RejectionReason): void {
    let byType = this.counts.get(tier)
    if (byType === undefined) this.counts.set(tier, byType = new Map())
    let byReason = byType.get(type)
    if (byReason === undefined) byType.set(type, byReason = new Map())
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1)
  }

  of (tier: string, type: string): Partial<Record<RejectionReason, number>> {
    return Object.fromEntries(this.counts.get(tier)?.get(type) ?? [])
  }

  total (reason?: RejectionReason): number {
    let n = 0
    for (const byType of this.counts.values()) {
      for (const byReason of byType.values()) {
        for (const [r, c] of byReason) if (reason === undefined || r === reason) n += c
      }
    }
    return n
  }
}
