// Fingerprints of ranges of the sorted record ids of a tier: the XOR of the records' 16-byte
// hashes and their count. Two nodes holding the same records in a range have equal
// fingerprints; anti-entropy sync recurses only into ranges whose fingerprints differ.
import type { TierStore } from '../store/tier-store.ts'

export interface RangeSummary {
  lo: string
  /** Exclusive upper bound; null is the end of the key space. */
  hi: string | null
  fp: Uint8Array
  count: number
}

export function lowerBound (ids: string[], key: string): number {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ids[mid] < key) lo = mid + 1
    else hi = mid
  }
  return lo
}

export class RangeView {
  readonly ids: string[]
  private readonly store: TierStore

  constructor (store: TierStore) {
    this.store = store
    this.ids = store.sortedIds()
  }

  bounds (lo: string, hi: string | null): [number, number] {
    return [lowerBound(this.ids, lo), hi === null ? this.ids.length : lowerBound(this.ids, hi)]
  }

  hashOf (id: string): Uint8Array | undefined {
    return this.store.getById(id)?.hash
  }

  summarize (lo: string, hi: string | null): RangeSummary {
    const [a, b] = this.bounds(lo, hi)
    return { lo, hi, fp: this.fingerprint(a, b), count: b - a }
  }

  fingerprint (a: number, b: number): Uint8Array {
    const fp = new Uint8Array(16)
    for (let i = a; i < b; i++) {
      const h = this.store.getById(this.ids[i])?.hash
      if (h === undefined) continue
      for (let j = 0; j < 16; j++) fp[j] ^= h[j]
    }
    return fp
  }

  /**
   * Splits a range into up to `parts` sub-ranges of about equal size (by this side's records).
   * Inner bounds are the shortest prefixes that separate neighbouring ids, to keep them short.
   */
  split (lo: string, hi: string | null, parts: number): RangeSummary[] {
    const [a, b] = this.bounds(lo, hi)
    const n = b - a
    const k = Math.max(1, Math.min(parts, n))
    const out: RangeSummary[] = []
    let start = lo
    let startIndex = a
    for (let i = 1; i <= k; i++) {
      const endIndex = i === k ? b : a + Math.floor(n * i / k)
      const end = i === k ? hi : separator(this.ids[endIndex - 1], this.ids[endIndex])
      out.push({ lo: start, hi: end, fp: this.fingerprint(startIndex, endIndex), count: endIndex - startIndex })
      start = end as string
      startIndex = endIndex
    }
    return out
  }
}

/** The shortest prefix of `next` that sorts after `prev` (prev < next). */
export function separator (prev: string, next: string): string {
  let j = 0
  while (j < prev.length && prev[j] === next[j]) j++
  return next.slice(0, j + 1)
}

/** A Map key for a 16-byte fingerprint. */
export function hashKey (hash: Uint8Array, at = 0): string {
  return String.fromCharCode.apply(null, hash.subarray(at, at + 16) as unknown as number[])
}
