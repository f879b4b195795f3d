// Bundle garbage collection on a real bundle store (signed bundles as files under a temporary
// home): a bundle a plan or an instance needs stays whatever its age; one nothing needs stays
// for the grace period after it was stored (a publish just before its plan keeps it), then is
// removed, logged and counted; storing it again restarts the grace; a fetch under way keeps it.
import { describe, it, expect, beforeEach } from 'vitest'
import { mkdtempSync, existsSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { randomSecretKey } from '../../crypto/index.ts'
import { packBundle, bundleDigest } from '../../workloads/bundle/index.ts'
import { BundleStore } from '../../node/workloads/bundle-store.ts'
import { BundleCollector } from '../../node/workloads/bundle-collector.ts'

const GRACE = 60 * 60_000
const key = randomSecretKey()
const log = pino({ level: 'silent' })

function bundle (name: string): Uint8Array {
  return packBundle({ manifest: { name, version: '1.0.0', kind: 'service', command: 'node', args: ['app.mjs'], resources: { cpuMillis: 100, memoryMb: 64 } } as never, files: [{ path: 'app.mjs', bytes: new TextEncoder().encode(`// ${name}\n`), executable: false }], secretKey: key })
}

let store: BundleStore
const file = (digest: string): string => join(store.dir, `${digest}.spore`)
/** Makes the store's copy of `digest` look stored `ms` ago. */
const age = (digest: string, ms: number): void => { const t = new Date(Date.now() - ms); utimesSync(file(digest), t, t) }

beforeEach(() => {
  store = new BundleStore(join(mkdtempSync(join(tmpdir(), 'myc-bundles-')), 'apps/bundles'))
})

describe('bundle collection', () => {
  it('removes only what no plan, instance or fetch needs, once its grace period is over', () => {
    const [planned, running, fresh, old, fetching] = ['planned', 'running', 'fresh', 'old', 'fetching'].map(n => {
      const bytes = bundle(n)
      store.put(bytes)
      return bundleDigest(bytes)
    })
    for (const d of [planned, running, old, fetching]) age(d, 2 * GRACE)
    age(fresh, GRACE / 2)
    const collector = new BundleCollector({ store, log, graceMs: GRACE, inUse: () => [fetching] })
    const wanted = new Map([[planned, 'plan planned'], [running, 'instance running runs it here']])
    const pass = collector.collect(wanted)
    expect(pass.removed.map(r => r.digest)).toEqual([old])
    expect(existsSync(file(old))).toBe(false)
    for (const d of [planned, running, fresh, fetching]) expect(existsSync(file(d))).toBe(true)
    expect(Object.fromEntries(pass.kept.map(k => [k.digest, k.why]))).toMatchObject({ [planned]: 'plan planned', [running]: 'instance running runs it here', [fetching]: 'being fetched' })
    expect(pass.kept.find(k => k.digest === fresh)?.why).toMatch(/stored \d+ s ago/)
    expect(collector.removedCount).toBe(1)
    expect(collector.removedBytes).toBe(pass.removed[0].size)
    expect(collector.recent.map(r => r.digest)).toEqual([old])

    // the plan is removed and the instance stopped: both go once they are past their grace
    const next = collector.collect(new Map())
    expect(next.removed.map(r => r.digest).sort()).toEqual([planned, running].sort())
    expect(store.digests().sort()).toEqual([fresh, fetching].sort())
    expect(collector.removedCount).toBe(3)
  })

  it('storing a bundle again (a new publish or fetch) restarts its grace period; a plan being signed touches it', () => {
    const a = bundle('again')
    const b = bundle('touched')
    store.put(a)
    store.put(b)
    age(bundleDigest(a), 2 * GRACE)
    age(bundleDigest(b), 2 * GRACE)
    store.put(a)
    store.touch(bundleDigest(b))
    const collector = new BundleCollector({ store, log, graceMs: GRACE })
    expect(collector.collect(new Map()).removed).toEqual([])
    expect(store.open(bundleDigest(a))?.manifest.name).toBe('again')
  })

  it('a bundle that went is fetched and kept again like any other', () => {
    const bytes = bundle('back')
    const digest = bundleDigest(bytes)
    store.put(bytes)
    age(digest, 2 * GRACE)
    const collector = new BundleCollector({ store, log, graceMs: GRACE })
    expect(collector.collect(new Map()).removed.map(r => r.digest)).toEqual([digest])
    expect(store.has(digest)).toBe(false)
    store.put(bytes, digest)
    expect(collector.collect(new Map()).removed).toEqual([])
    expect(store.has(digest)).toBe(true)
  })
})
