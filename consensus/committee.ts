// Deterministic committees. Candidates are ranked by sha256(seed ‖ peerId) (the seed is the
// current primary epoch digest, so nobody picks their rank). Attempts come in windows of
// ATTEMPTS_PER_COMMITTEE: within a window the members stay the same and the retry rotates the
// proposer (the first member), so members' locks (see RoundEngine) keep a retry from
// certifying another input; the next window shifts the membership by one candidate, so a
// committee with dead or cut-off members is replaced.
import { encodeCanonical, sha256, toHex } from '../crypto/index.ts'

/**
 * Matching reveals needed in a committee of n: 2f+1 when n = 3f+1, and in general
 * ⌈(n+f+1)/2⌉, so any two quorums share at least f+1 members (one of them honest).
 */
export function quorumOf (f: number, n = 3 * f + 1): number {
  return Math.max(2 * f + 1, Math.ceil((n + f + 1) / 2))
}

/** Attempts that keep one committee (rotating the proposer) before the membership shifts. */
export const ATTEMPTS_PER_COMMITTEE = 2

export function minimumCommittee (f: number): number {
  return 3 * f + 1
}

/**
 * f for a committee of `size` members: the configured f, lowered when exclusions leave fewer
 * than 3f+1 candidates (so the network keeps certifying with what it has); never below 1
 * unless f is configured 0. Deterministic from agreed data, so every checker computes the same.
 */
export function effectiveF (configuredF: number, size: number): number {
  return Math.min(configuredF, Math.floor((size - 1) / 3))
}

/** The fewest members a committee may have. */
export function smallestCommittee (configuredF: number): number {
  return minimumCommittee(Math.min(configuredF, 1))
}

export function rankCandidates (candidates: readonly string[], seed: Uint8Array): string[] {
  const unique = [...new Set(candidates)]
  const rank = new Map(unique.map(p => [p, toHex(sha256(encodeCanonical(['mycelium/bft/rank/1', seed, p])))]))
  return unique.sort((a, b) => {
    const x = rank.get(a) as string
    const y = rank.get(b) as string
    return x < y ? -1 : x > y ? 1 : a < b ? -1 : 1
  })
}

/** The committee of one attempt, in ranking order (its first member proposes). */
export function selectCommittee (candidates: readonly string[], seed: Uint8Array, attempt: number, size: number): string[] {
  const ranked = rankCandidates(candidates, seed)
  const n = Math.min(size, ranked.length)
  if (n === 0) return []
  const window = Math.floor(attempt / ATTEMPTS_PER_COMMITTEE)
  const members: string[] = []
  for (let i = 0; i < n; i++) members.push(ranked[(window + i) % ranked.length])
  const r = (attempt % ATTEMPTS_PER_COMMITTEE) % n
  return [...members.slice(r), ...members.slice(0, r)]
}
