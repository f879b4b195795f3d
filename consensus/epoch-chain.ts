// The certified primary epochs this node holds (the most recent ones), and the chain
// invariant: an epoch number is bound to one digest forever, and each epoch extends the
// one before it. A conflicting epoch is refused and counted, never adopted.
import { equalBytes } from '../crypto/index.ts'
import { ConflictingEpochError, EpochGapError } from './errors.ts'

export interface EpochRecord {
  epoch: number
  digest: Uint8Array
  prev: Uint8Array | null
  headerBytes: Uint8Array
  /** Peers the committee for the next epoch is drawn from (recorded in this epoch's header). */
  candidates: string[]
  issuedAt: number
  certificate: Uint8Array
  /** The round committee that certified this epoch (empty for a root-certified epoch). */
  committee: string[]
  signers: string[]
  /** Canonical entry bytes, kept for recent epochs so lagging peers can be served. */
  entries?: Uint8Array[]
}

export class EpochChain {
  private readonly records = new Map<number, EpochRecord>()
  private readonly keep: number
  private latestRecord: EpochRecord | undefined

  constructor (options: { keep?: number } = {}) {
    this.keep = options.keep ?? 64
  }

  latest (): EpochRecord | undefined {
    return this.latestRecord
  }

  /** The oldest epoch held in memory. */
  oldest (): number | undefined {
    let min: number | undefined
    for (const n of this.records.keys()) if (min === undefined || n < min) min = n
    return min
  }

  get (epoch: number): EpochRecord | undefined {
    return this.records.get(epoch)
  }

  /** Starts the chain from a trusted epoch (the primary tier's latest, checked when it was stored). */
  anchor (record: EpochRecord): void {
    this.records.clear()
    this.records.set(record.epoch, record)
    this.latestRecord = record
  }

  /** Throws ConflictingEpochError if `epoch` is already certified with another digest. */
  assertNoConflict (epoch: number, digest: Uint8Array): void {
    const held = this.records.get(epoch)
    if (held !== undefined && !equalBytes(held.digest, digest)) throw new ConflictingEpochError(`epoch ${epoch} is already certified with another digest`)
  }

  /** Appends the next certified epoch (already verified); false if it is already held. */
  add (record: EpochRecord): boolean {
    this.assertNoConflict(record.epoch, record.digest)
    const latest = this.latestRecord
    if (latest !== undefined && record.epoch <= latest.epoch) {
      if (this.records.has(record.epoch) || record.epoch < latest.epoch) return false
    }
    if (latest !== undefined && (record.epoch !== latest.epoch + 1 || record.prev === null || !equalBytes(record.prev, latest.digest))) {
      throw new EpochGapError(`epoch ${record.epoch} does not extend the held epoch ${latest.epoch}`)
    }
    this.records.set(record.epoch, record)
    this.latestRecord = record
    for (const n of this.records.keys()) if (n <= record.epoch - this.keep) this.records.delete(n)
    for (const r of this.records.values()) if (r.epoch < record.epoch - 8) delete r.entries
    return true
  }

  recent (limit = 16): EpochRecord[] {
    return [...this.records.values()].sort((a, b) => b.epoch - a.epoch).slice(0, limit)
  }
}
