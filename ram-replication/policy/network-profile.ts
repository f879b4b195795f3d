// LAN or WAN settings from a measured round-trip time. The window of a link must cover its
// bandwidth-delay product or the link idles waiting for receipts; a WAN also gets longer epochs
// so a round trip is small next to an epoch and the per-epoch overhead stays low.

export interface NetworkProfile {
  name: 'lan' | 'wan'
  rttMs: number
  /** Bytes a link may have in flight (sent, not receipted). */
  windowBytes: number
  /** Target encoded size of one stripe. */
  stripeBytes: number
  /** Time between checkpoints. */
  epochIntervalMs: number
  /** Backlog at which the emergency mode acts. */
  backlogLimitBytes: number
  /** Silence after which a backup considers the primary lost. */
  primaryTimeoutMs: number
}

// Same-building networks stay well under this; a WAN path rarely does.
export const LAN_RTT_LIMIT_MS = 10

/**
 * `linkBytesPerS` is the expected rate of one link (measured or configured); it defaults to
 * gigabit on a LAN and 100 Mbit/s on a WAN.
 */
export function profileForRtt (rttMs: number, linkBytesPerS?: number): NetworkProfile {
  const rtt = Math.max(0.05, rttMs)
  const lan = rtt <= LAN_RTT_LIMIT_MS
  const rate = linkBytesPerS ?? (lan ? 125_000_000 : 12_500_000)
  const bdp = rate * rtt / 1000
  const stripeBytes = lan ? 256 * 1024 : 128 * 1024
  const windowBytes = Math.min(64 * 1024 * 1024, Math.max(4 * stripeBytes, Math.ceil(2 * bdp)))
  const epochIntervalMs = lan ? 10 : Math.min(200, Math.max(25, Math.ceil(4 * rtt)))
  return {
    name: lan ? 'lan' : 'wan',
    rttMs,
    windowBytes,
    stripeBytes,
    epochIntervalMs,
    // A few epochs' worth at full link rate before the emergency mode steps in.
    backlogLimitBytes: Math.max(16 * 1024 * 1024, Math.ceil(rate * epochIntervalMs / 1000 * 8)),
    primaryTimeoutMs: Math.max(500, Math.ceil(rtt * 10 + 2 * epochIntervalMs))
  }
}
