// When a revocation stops mattering: once every certificate the revoked key could present has
// expired, nobody accepts that key anyway, and the revocation may be pruned from the bounded
// lists. The administrator derives it from its own record of issued certificates
// (members.json): the key's own certificates, and every issuer's, since a delegated
// certificate is valid only while its issuer's is. A key this administrator never certified
// (a browser tab certified by a sclerotium, or a member admitted from another machine holding
// the root key) may hold certificates it cannot see, so its revocation is kept for good.
import type { IssuedCertificate } from '../home/index.ts'

/** Room for members whose clock lags: they still accept a certificate a little past its expiry. */
export const REVOCATION_CLOCK_MARGIN_MS = 24 * 3600_000

export function revocationUntil (issued: IssuedCertificate[], peerId: string, now: number): number | undefined {
  const own = issued.filter(c => c.peerId === peerId)
  if (own.length === 0) return undefined
  const bounds = [...own, ...issued.filter(c => c.capabilities.includes('issuer'))].map(c => c.expiresAt)
  return Math.max(now, ...bounds) + REVOCATION_CLOCK_MARGIN_MS
}
