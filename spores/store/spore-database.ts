// The node's spore database: one level instance (opened here from a path, or handed over
// already open by the daemon) with a sublevel per tier and per entry type.
import { Level } from 'level'
import { ENTRY_TYPES, type EntryType } from '../entry/types.ts'
import { BUCKET_OPTIONS, META_BUCKET, QUARANTINE_BUCKET, TIERS, entryBucketName, type Bucket, type TierName } from './buckets.ts'

export interface TierBuckets {
  entries: Record<EntryType, Bucket>
  meta: Bucket
  quarantine: Bucket
}

export type SporeBatchOp =
  | { type: 'put', sublevel: Bucket, key: string, value: Uint8Array }
  | { type: 'del', sublevel: Bucket, key: string }

export class SporeDatabase {
  readonly tiers: Record<TierName, TierBuckets>
  private readonly level: Level<any, any>
  private readonly ownsLevel: boolean

  private constructor (level: Level<any, any>, ownsLevel: boolean) {
    this.level = level
    this.ownsLevel = ownsLevel
    const root = level.sublevel<string, Uint8Array>('spores', BUCKET_OPTIONS)
    const tiers: Partial<Record<TierName, TierBuckets>> = {}
    for (const tier of TIERS) {
      const t = root.sublevel<string, Uint8Array>(tier, BUCKET_OPTIONS)
      const entries: Partial<Record<EntryType, Bucket>> = {}
      for (const type of ENTRY_TYPES) entries[type] = t.sublevel<string, Uint8Array>(entryBucketName(type), BUCKET_OPTIONS) as Bucket
      tiers[tier] = { entries: entries as Record<EntryType, Bucket>, meta: t.sublevel<string, Uint8Array>(META_BUCKET, BUCKET_OPTIONS) as Bucket, quarantine: t.sublevel<string, Uint8Array>(QUARANTINE_BUCKET, BUCKET_OPTIONS) as Bucket }
    }
    this.tiers = tiers as Record<TierName, TierBuckets>
  }

  /** Opens (creating if needed) the database at a path, or uses a Level the daemon already opened. */
  static async open (location: string | Level<any, any>): Promise<SporeDatabase> {
    if (typeof location === 'string') {
      const level = new Level<string, Uint8Array>(location, BUCKET_OPTIONS)
      await level.open()
      return new SporeDatabase(level, true)
    }
    await location.open()
    return new SporeDatabase(location, false)
  }

  /** One atomic write across sublevels: all of it lands or none of it does. */
  async write (ops: SporeBatchOp[]): Promise<void> {
    if (ops.length === 0) return
    await this.level.batch(ops as any)
  }

  async close (): Promise<void> {
    if (this.ownsLevel) await this.level.close()
  }
}
