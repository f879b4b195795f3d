// Deterministic committees. Candidates are ranked by sha256(seed ‖ peerId) (the seed is the
// digest of the certified epoch before, so nobody picks their rank) and the committee of a key
// is the first max(3f+1, committeeSize) of them, the same for every attempt on that key: any
// two quorums of any two attempts then share at least f+1 members, one of them honest, which is
// what the locks (locks.ts) need. Attempts rotate only the proposer.
import { encodeCanonical, sha256, toHex } from '../crypto/index.ts'

/**
 * Matching reveals needed in a committee of n: 2f+1 when n = 3f+1, and in general
 * ⌈(n+f+1)/2⌉, so any two quorums share at least f+1 members (one of them honest).
 */
export function quorumOf (f: number, n = 3 * f + 1): number {
  return Math.max(2 * f + 1, Math.ceil((n + f + 1) / 2))
}

export function minimumCommittee (f: number): number {
  return 3 * f + 1
}

// Every message and status read asks for the committee of the same few epochs: the ranking is kept.
const ranked = new Map<string, string[]>()
const RANKED_MAX = 64

export function rankCandidates (candidates: readonly string[], seed: Uint8Array): string[] {
  const id = `${toHex(seed)}|${candidates.join(',')}`
  const held = ranked.get(id)
  if (held !== undefined) return [...held]
  const order = rankUncached(candidates, seed)
  if (ranked.size >= RANKED_MAX) ranked.delete(ranked.keys().next().value as string)
  ranked.set(id, order)
  return [...order]
}

function rankUncached (candidates: readonly string[], seed: Uint8Array): string[] {
  const unique = [...new Set(candidates)]
  const rank = new Map(unique.map(p => [p, toHex(sha256(encodeCanonical(['mycelium/bft/rank/1', seed, p])))]))
  return unique.sort((a, b) => {
    const x = rank.get(a) as string
    const y = rank.get(b) as string
    return x < y ? -1 : x > y ? 1 : a < b ? -1 : 1
  })
}

/** The committee of a key, in ranking order; empty when there are fewer than 3f+1 candidates. */
export function selectCommittee (candidates: readonly string[], seed: Uint8Array, f: number, size: number): string[] {
  const ranked = rankCandidates(candidates, seed)
  if (ranked.length < minimumCommittee(f)) return []
  return ranked.slice(0, Math.max(minimumCommittee(f), Math.min(size, ranked.length)))
}

/** Who proposes attempt `attempt`: the members take turns, in ranking order. */
export function proposerOf (committee: readonly string[], attempt: number): string {
  return committee[attempt % committee.length]
}

/** Why a key has no committee (for status output), or undefined when it has one. */
export function shortfall (candidates: readonly string[], f: number): string | undefined {
  const have = new Set(candidates).size
  const need = minimumCommittee(f)
  return have >= need ? undefined : `f = ${f} needs ${need} committee candidates, the certified epoch names ${have}`
}
