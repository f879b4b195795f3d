// Bundle garbage collection: a node deletes a bundle file it holds once nothing needs it, so
// disks do not fill with every bundle ever published or fetched. A bundle stays while a plan
// in force (or one signed and waiting to be certified) names it, while an instance here runs
// it, while it is being fetched, and for a grace period after this node stored it, so a plan
// that comes just after `app publish` still finds it. Every removal is logged and counted;
// the caller withdraws this node's holder record so no member asks it for the bundle again.
import type { Logger } from '../log/index.ts'
import type { BundleStore } from './bundle-store.ts'

export const BUNDLE_GRACE_MS = 60 * 60_000

export interface RemovedBundle { digest: string, size: number, storedAt: number, removedAt: number }

export interface BundleCollection {
  at: number
  /** the bundles kept, and why each is */
  kept: Array<{ digest: string, size: number, why: string }>
  removed: RemovedBundle[]
}

export interface BundleCollectorOptions {
  store: BundleStore
  log: Logger
  graceMs?: number
  /** digests in use right now beyond the plans and instances (fetches under way) */
  inUse?: () => Iterable<string>
}

export class BundleCollector {
  private readonly o: BundleCollectorOptions
  private readonly graceMs: number
  /** bundles removed since this node started, newest last (the last 20) */
  readonly recent: RemovedBundle[] = []
  removedCount = 0
  removedBytes = 0
  last: BundleCollection | undefined

  constructor (options: BundleCollectorOptions) {
    this.o = options
    this.graceMs = options.graceMs ?? BUNDLE_GRACE_MS
  }

  /**
   * One pass. `wanted` maps each digest something needs to the reason (a plan, an instance):
   * those are never removed, whatever their age.
   */
  collect (wanted: ReadonlyMap<string, string>, now = Date.now()): BundleCollection {
    const inUse = new Set(this.o.inUse?.() ?? [])
    const kept: BundleCollection['kept'] = []
    const removed: RemovedBundle[] = []
    for (const digest of this.o.store.digests()) {
      const size = this.o.store.size(digest) ?? 0
      const storedAt = this.o.store.storedAt(digest)
      if (storedAt === undefined) continue
      const why = wanted.get(digest) ??
        (inUse.has(digest) ? 'being fetched' : undefined) ??
        (now - storedAt < this.graceMs ? `stored ${Math.round((now - storedAt) / 1000)} s ago (kept ${this.graceMs < 120_000 ? `${Math.round(this.graceMs / 1000)} s` : `${Math.round(this.graceMs / 60_000)} min`} for a plan to name it)` : undefined)
      if (why !== undefined) {
        kept.push({ digest, size, why })
        continue
      }
      this.o.store.remove(digest)
      const gone = { digest, size, storedAt, removedAt: now }
      removed.push(gone)
      this.o.log.info({ digest, size, storedMinAgo: Math.round((now - storedAt) / 60_000) }, 'bundle removed: no plan names it and no instance here runs it')
    }
    this.removedCount += removed.length
    this.removedBytes += removed.reduce((n, r) => n + r.size, 0)
    this.recent.push(...removed)
    this.recent.splice(0, Math.max(0, this.recent.length - 20))
    this.last = { at: now, kept, removed }
    return this.last
  }
}
