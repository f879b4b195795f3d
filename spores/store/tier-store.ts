// One tier's entries: the level buckets plus an in-memory index (version and fingerprint of
// every record) loaded at open, so validation and sync never read the disk to compare.
import { equalBytes } from '../../crypto/index.ts'
import { decodeEntry, entryHash, entryId, type SignedEntry } from '../entry/entry.ts'
import { ENTRY_TYPES, type EntryType } from '../entry/types.ts'
import type { SporeBatchOp, SporeDatabase, TierBuckets } from './spore-database.ts'
import type { TierName } from './buckets.ts'

export interface IndexedEntry {
  type: EntryType
  key: string
  origin: string
  seq: number
  issuedAt: number
  expiresAt?: number
  sig: Uint8Array
  hash: Uint8Array
}

export class TierStore {
  readonly name: TierName
  private readonly db: SporeDatabase
  readonly buckets: TierBuckets
  private readonly index = new Map<string, IndexedEntry>()
  private readonly counts = new Map<EntryType, number>()
  /** Records per type and origin: what one writer holds of a type (its quota, limits.ts). */
  private readonly originCounts = new Map<string, number>()
  private sorted: string[] = []
  private sortedFresh = true

  constructor (db: SporeDatabase, name: TierName) {
    this.db = db
    this.name = name
    this.buckets = db.tiers[name]
  }

  /** Reads every record; an undecodable one (it never should be) is deleted, not trusted. */
  async load (): Promise<{ loaded: number, dropped: number }> {
    let loaded = 0
    const dropped: SporeBatchOp[] = []
    for (const type of ENTRY_TYPES) {
      for await (const [key, value] of this.buckets.entries[type].iterator()) {
        try {
          const entry = decodeEntry(value)
          if (entry.type !== type || entry.key !== key) throw new Error('misplaced entry')
          this.remember(entry)
          loaded++
        } catch {
          dropped.push({ type: 'del', sublevel: this.buckets.entries[type], key })
        }
      }
    }
    await this.db.write(dropped)
    return { loaded, dropped: dropped.length }
  }

  get (type: string, key: string): IndexedEntry | undefined {
    return this.index.get(entryId(type, key))
  }

  getById (id: string): IndexedEntry | undefined {
    return this.index.get(id)
  }

  /** Records of `type` whose current version `origin` signed. */
  countOf (type: EntryType, origin: string): number {
    return this.originCounts.get(`${type}|${origin}`) ?? 0
  }

  private countOrigin (type: EntryType, origin: string, delta: number): void {
    const k = `${type}|${origin}`
    const n = (this.originCounts.get(k) ?? 0) + delta
    if (n <= 0) this.originCounts.delete(k)
    else this.originCounts.set(k, n)
  }

  count (type: EntryType): number {
    return this.counts.get(type) ?? 0
  }

  get size (): number {
    return this.index.size
  }

  async read (type: EntryType, key: string): Promise<SignedEntry | undefined> {
    const bytes = await this.buckets.entries[type].get(key)
    return bytes === undefined ? undefined : decodeEntry(bytes)
  }

  async readById (id: string): Promise<SignedEntry | undefined> {
    const slash = id.indexOf('/')
    const entry = this.index.get(id)
    if (entry === undefined || slash < 0) return undefined
    return await this.read(entry.type, id.slice(slash + 1))
  }

  async * entries (type?: EntryType): AsyncGenerator<SignedEntry> {
    for (const t of type === undefined ? ENTRY_TYPES : [type]) {
      for await (const value of this.buckets.entries[t].values()) yield decodeEntry(value)
    }
  }

  indexed (): IterableIterator<IndexedEntry> {
    return this.index.values()
  }

  putOp (entry: SignedEntry): SporeBatchOp {
    return { type: 'put', sublevel: this.buckets.entries[entry.type], key: entry.key, value: entry.bytes }
  }

  delOp (type: EntryType, key: string): SporeBatchOp {
    return { type: 'del', sublevel: this.buckets.entries[type], key }
  }

  /** Updates the index after the batch holding these changes was written. */
  applied (puts: Iterable<SignedEntry>, dels: Iterable<{ type: EntryType, key: string }> = []): void {
    for (const e of puts) this.remember(e)
    for (const d of dels) this.forget(d.type, d.key)
  }

  /** Undoes `applied(entries)` after their write failed, where no later version replaced them. */
  revert (entries: SignedEntry[], previous: Array<IndexedEntry | undefined>): void {
    entries.forEach((e, i) => {
      const id = entryId(e.type, e.key)
      const now = this.index.get(id)
      if (now === undefined || !equalBytes(now.sig, e.sig)) return
      const before = previous[i]
      if (before === undefined) this.forget(e.type, e.key)
      else this.index.set(id, before)
    })
  }

  /** Record ids in sorted order (for range-based sync). */
  sortedIds (): string[] {
    if (!this.sortedFresh) {
      this.sorted = [...this.index.keys()].sort()
      this.sortedFresh = true
    }
    return this.sorted
  }

  private remember (entry: SignedEntry): void {
    const id = entryId(entry.type, entry.key)
    const before = this.index.get(id)
    if (before === undefined) {
      this.counts.set(entry.type, this.count(entry.type) + 1)
      this.sortedFresh = false
    } else this.countOrigin(before.type, before.origin, -1)
    this.countOrigin(entry.type, entry.origin, 1)
    const indexed: IndexedEntry = { type: entry.type, key: entry.key, origin: entry.origin, seq: entry.seq, issuedAt: entry.issuedAt, sig: entry.sig.slice(), hash: entryHash(entry.sig) }
    if (entry.expiresAt !== undefined) indexed.expiresAt = entry.expiresAt
    this.index.set(id, indexed)
  }

  private forget (type: EntryType, key: string): void {
    const id = entryId(type, key)
    const before = this.index.get(id)
    if (before !== undefined) this.countOrigin(before.type, before.origin, -1)
    if (this.index.delete(id)) {
      this.counts.set(type, this.count(type) - 1)
      this.sortedFresh = false
    }
  }
}
