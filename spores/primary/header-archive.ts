// The certified headers the primary tier keeps after their epochs' entries are gone: one
// [header bytes, certificate] pair per epoch, for the newest `retention` epochs. A member far
// behind checks the chain from its own latest epoch to the newest one with them, link by link,
// before it takes any entries (light sync); beyond the retention there is nothing left to check
// the chain with, and such a member adopts nothing.
//
//   spores!primary!meta!h-<epoch, 15 digits> → canonical CBOR [header bytes, certificate]
//
// Bounded on disk: a header is at most ~4 KiB (64 committee candidates) and a certificate at
// most 64 KiB, so the archive holds at most `retention` × 68 KiB; about 2 KiB an epoch with a
// committee of four. The stored pairs are contiguous, from `oldest()` to `tip()`: they are only
// written after their link to the one before was checked (primary-spore.ts), and only the oldest
// are deleted.
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import type { Bucket } from '../store/buckets.ts'
import type { SporeBatchOp } from '../store/spore-database.ts'
import { decodeCertifiedHeader, type CertifiedHeader } from './epoch.ts'

/** A week of epochs at the default 30 s interval. */
export const DEFAULT_HEADER_RETENTION = 7 * 24 * 120

const PREFIX = 'h-'
const keyOf = (epoch: number): string => `${PREFIX}${String(epoch).padStart(15, '0')}`
const epochOf = (key: string): number => Number(key.slice(PREFIX.length))

export type HeaderPair = [Uint8Array, Uint8Array]

export class HeaderArchive {
  private readonly bucket: Bucket
  readonly retention: number
  private tipEpoch: number | undefined
  private oldestEpoch: number | undefined

  constructor (bucket: Bucket, retention = DEFAULT_HEADER_RETENTION) {
    if (!Number.isSafeInteger(retention) || retention < 1) throw new RangeError(`header retention must be a positive integer (got ${retention})`)
    this.bucket = bucket
    this.retention = retention
  }

  async load (): Promise<void> {
    for await (const k of this.bucket.keys({ gte: PREFIX, lt: `${PREFIX}~`, limit: 1 })) this.oldestEpoch = epochOf(k)
    for await (const k of this.bucket.keys({ gte: PREFIX, lt: `${PREFIX}~`, limit: 1, reverse: true })) this.tipEpoch = epochOf(k)
  }

  /** The writes that drop every kept header; `commit` once they are written. */
  async clearOps (): Promise<{ ops: SporeBatchOp[], commit: () => void }> {
    const ops: SporeBatchOp[] = []
    for await (const k of this.bucket.keys({ gte: PREFIX, lt: `${PREFIX}~` })) ops.push({ type: 'del', sublevel: this.bucket, key: k })
    return { ops, commit: () => { this.tipEpoch = undefined; this.oldestEpoch = undefined } }
  }

  /** The newest epoch whose header is kept. */
  tip (): number | undefined {
    return this.tipEpoch
  }

  /** The oldest epoch whose header is kept. */
  oldest (): number | undefined {
    return this.oldestEpoch
  }

  async get (epoch: number): Promise<CertifiedHeader | undefined> {
    const value = await this.bucket.get(keyOf(epoch))
    if (value === undefined) return undefined
    const [headerBytes, certificate] = decodeCanonical(value) as HeaderPair
    return decodeCertifiedHeader(headerBytes, certificate)
  }

  /** Kept pairs of epochs from..to (inclusive), oldest first, at most `max` of them. */
  async range (from: number, to: number, max: number): Promise<HeaderPair[]> {
    const out: HeaderPair[] = []
    if (to < from || max < 1) return out
    for await (const value of this.bucket.values({ gte: keyOf(from), lte: keyOf(to), limit: max })) out.push(decodeCanonical(value) as HeaderPair)
    return out
  }

  /** The writes that store `headers` (already checked, in chain order) and drop what falls out of the retention. */
  async writeOps (headers: CertifiedHeader[]): Promise<{ ops: SporeBatchOp[], commit: () => void }> {
    const ops: SporeBatchOp[] = headers.map(h => ({ type: 'put', sublevel: this.bucket, key: keyOf(h.header.epoch), value: encodeCanonical([h.headerBytes, h.certificate]) }))
    const tip = Math.max(this.tipEpoch ?? -1, ...headers.map(h => h.header.epoch))
    const keepFrom = tip - this.retention + 1
    let oldest = Math.min(this.oldestEpoch ?? Infinity, ...headers.map(h => h.header.epoch))
    if (oldest < keepFrom) {
      for await (const k of this.bucket.keys({ gte: PREFIX, lt: keyOf(keepFrom) })) ops.push({ type: 'del', sublevel: this.bucket, key: k })
      // a header of this batch that is already out of the retention is not kept either
      for (const h of headers) if (h.header.epoch < keepFrom) ops.push({ type: 'del', sublevel: this.bucket, key: keyOf(h.header.epoch) })
      oldest = keepFrom
    }
    return {
      ops,
      commit: () => {
        if (tip >= 0) this.tipEpoch = tip
        if (Number.isFinite(oldest)) this.oldestEpoch = oldest
      }
    }
  }
}
