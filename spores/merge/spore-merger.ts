// Validation-first merging into the seed or latent tier. Every incoming entry passes, in
// order: decode → schema → signature and origin → expiry and window → limits → conflict with
// a higher tier → version (replays ignored) → merge. All accepted entries of one call are
// written in one atomic batch; a rejected entry changes nothing but a counter.
import { entryId, compareVersions, type SignedEntry } from '../entry/entry.ts'
import { ENTRY_CODECS, type EntryType } from '../entry/types.ts'
import { mayOverride, type TrustAuthority } from '../entry/authority.ts'
import { checkEntry, type EntryCheck } from './entry-check.ts'
import type { TierStore, IndexedEntry } from '../store/tier-store.ts'
import type { SporeDatabase, SporeBatchOp } from '../store/spore-database.ts'
import { originQuota, type SporeLimits } from '../limits.ts'
import type { SporeLogger } from '../logger.ts'
import type { RejectionReason, RejectionSink } from './rejection.ts'

export type MergeTier = 'seed' | 'latent'

export type MergeOutcome =
  | { status: 'merged', entry: SignedEntry }
  | { status: 'rejected', reason: RejectionReason, type: string }

export interface SporeMergerOptions {
  db: SporeDatabase
  tiers: { primary: TierStore, seed: TierStore, latent: TierStore }
  trust: TrustAuthority
  limits: SporeLimits
  clock: () => number
  sink: RejectionSink
  log: SporeLogger
  /** When given, entries whose origin is not a member are rejected as `unknown-origin`. */
  isMember?: (peerId: string) => boolean
}

type Checked = EntryCheck

export class SporeMerger {
  private readonly o: SporeMergerOptions
  private readonly listeners = new Set<(tier: MergeTier, entries: SignedEntry[]) => void>()
  private queue: Promise<unknown> = Promise.resolve()
  private writes: Promise<void> = Promise.resolve()

  constructor (options: SporeMergerOptions) {
    this.o = options
  }

  /** Called after each successful batch with the entries it merged. */
  onMerged (listener: (tier: MergeTier, entries: SignedEntry[]) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Checks that do not depend on the store: decode, schema, signature, origin, time. */
  check (input: Uint8Array | SignedEntry, now: number): Checked {
    return checkEntry(input, now, this.o)
  }

  /**
   * Merges a batch and resolves once it is on disk. Batches are validated one after another
   * against the index (which already includes batches still being written), while writes run
   * in order on level's own thread, so validating the next batch overlaps the current write.
   */
  async merge (tier: MergeTier, inputs: Array<Uint8Array | SignedEntry>): Promise<MergeOutcome[]> {
    const staged = this.queue.then(async () => await this.stage(tier, inputs))
    this.queue = staged.then(() => {}, () => {})
    const { outcomes, written } = await staged
    await written
    return outcomes
  }

  /** Writes batches strictly in submission order. */
  private write (ops: SporeBatchOp[]): Promise<void> {
    const written = this.writes.then(async () => await this.o.db.write(ops))
    this.writes = written.catch(() => {})
    return written
  }

  private async stage (tier: MergeTier, inputs: Array<Uint8Array | SignedEntry>): Promise<{ outcomes: MergeOutcome[], written: Promise<void> }> {
    const store = this.o.tiers[tier]
    const higher = tier === 'latent' ? [this.o.tiers.primary, this.o.tiers.seed] : [this.o.tiers.primary]
    const now = this.o.clock()
    const pending = new Map<string, SignedEntry>()
    const added = new Map<EntryType, number>()
    const addedBy = new Map<string, number>()
    const pruned = new Set<EntryType>()
    const outcomes: MergeOutcome[] = []
    for (const input of inputs) {
      const checked = this.check(input, now)
      if (!checked.ok) {
        outcomes.push(this.reject(tier, checked.type, checked.reason))
        continue
      }
      const entry = checked.entry
      const id = entryId(entry.type, entry.key)
      const current: SignedEntry | IndexedEntry | undefined = pending.get(id) ?? store.getById(id)
      if (current === undefined) {
        const max = this.o.limits.maxEntries[entry.type]
        if (store.count(entry.type) + (added.get(entry.type) ?? 0) >= max && !pruned.has(entry.type)) {
          pruned.add(entry.type)
          await this.prune(tier, now, entry.type)
        }
        if (store.count(entry.type) + (added.get(entry.type) ?? 0) >= max) {
          outcomes.push(this.reject(tier, entry.type, 'limit'))
          continue
        }
      }
      // One writer holds at most its share of a type: a new record, or one taken over from another origin, counts against it.
      if (current === undefined || current.origin !== entry.origin) {
        const mine = store.countOf(entry.type, entry.origin) + (addedBy.get(`${entry.type}|${entry.origin}`) ?? 0)
        if (mine >= originQuota(this.o.limits, entry.type)) {
          outcomes.push(this.reject(tier, entry.type, 'origin-limit'))
          continue
        }
      }
      if (this.conflictsWithHigherTier(entry, id, higher)) {
        outcomes.push(this.reject(tier, entry.type, 'higher-tier-conflict'))
        continue
      }
      if (current !== undefined && compareVersions(entry, current) <= 0) {
        outcomes.push(this.reject(tier, entry.type, 'replay'))
        continue
      }
      if (current === undefined) added.set(entry.type, (added.get(entry.type) ?? 0) + 1)
      if (current === undefined || current.origin !== entry.origin) addedBy.set(`${entry.type}|${entry.origin}`, (addedBy.get(`${entry.type}|${entry.origin}`) ?? 0) + 1)
      pending.set(id, entry)
      outcomes.push({ status: 'merged', entry })
    }
    // an entry superseded later in the same call is not written: it counts as a replay
    for (let i = 0; i < outcomes.length; i++) {
      const out = outcomes[i]
      if (out.status === 'merged' && pending.get(entryId(out.entry.type, out.entry.key)) !== out.entry) outcomes[i] = this.reject(tier, out.entry.type, 'replay')
    }
    if (pending.size === 0) return { outcomes, written: Promise.resolve() }
    const merged = [...pending.values()]
    const previous = merged.map(e => store.getById(entryId(e.type, e.key)))
    store.applied(merged)
    const written = this.write(merged.map(e => store.putOp(e))).then(() => {
      for (const l of this.listeners) l(tier, merged)
    }, (err: unknown) => {
      store.revert(merged, previous)
      throw err
    })
    return { outcomes, written }
  }

  /**
   * A record held by a higher tier wins, unless the incoming one is strictly newer and may
   * replace it (authority.ts mayOverride: its owner's, or an authorized trust verdict).
   */
  private conflictsWithHigherTier (entry: SignedEntry, id: string, higher: TierStore[]): boolean {
    for (const h of higher) {
      const held = h.getById(id)
      if (held === undefined || compareVersions(entry, held) === 0) continue
      if (entry.seq > held.seq && mayOverride(entry)) continue
      return true
    }
    return false
  }

  /**
   * After a new primary epoch: drops lower-tier records that now contradict it (the same rule
   * as on merge), so the latent and seed tiers never hold what the agreed state overrides.
   */
  async dropOverridden (tier: MergeTier): Promise<number> {
    const store = this.o.tiers[tier]
    const higher = tier === 'latent' ? [this.o.tiers.primary, this.o.tiers.seed] : [this.o.tiers.primary]
    const dels: Array<{ type: EntryType, key: string }> = []
    for (const e of store.indexed()) {
      const id = entryId(e.type, e.key)
      for (const h of higher) {
        const held = h.getById(id)
        if (held === undefined || compareVersions(e, held) === 0) continue
        if (e.seq > held.seq && mayOverride(e)) continue
        dels.push({ type: e.type, key: e.key })
        break
      }
    }
    if (dels.length === 0) return 0
    await this.write(dels.map(d => store.delOp(d.type, d.key)))
    store.applied([], dels)
    return dels.length
  }

  /** Drops expired and out-of-window records of a tier (one type, or all) in one batch. */
  async prune (tier: MergeTier | 'primary', now = this.o.clock(), only?: EntryType): Promise<number> {
    const store = this.o.tiers[tier]
    const horizon = now - this.o.limits.windowMs
    const dels: Array<{ type: EntryType, key: string }> = []
    for (const e of store.indexed()) {
      if (only !== undefined && e.type !== only) continue
      if ((e.expiresAt !== undefined && e.expiresAt <= now) || (ENTRY_CODECS[e.type].temporal && e.issuedAt < horizon)) dels.push({ type: e.type, key: e.key })
    }
    if (dels.length === 0) return 0
    await this.write(dels.map(d => store.delOp(d.type, d.key)))
    store.applied([], dels)
    return dels.length
  }

  private reject (tier: string, type: string, reason: RejectionReason): MergeOutcome {
    this.o.sink.rejected(tier, type, reason)
    this.o.log.debug({ tier, type, reason }, 'spore entry rejected')
    return { status: 'rejected', reason, type }
  }
}

