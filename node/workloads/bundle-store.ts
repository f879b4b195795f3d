// The bundles this node holds, as files named by their digest under <home>/apps/bundles. A file
// is written only after its bytes hash to its name and open as a signed bundle, so what is here
// was verified once; it is opened (verified) again before each use all the same. A file's
// modification time is when this node last stored it (kept again, it is touched): the bundle
// collector counts its grace period from there.
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic, removeIfExists } from '../home/index.ts'
import { bundleDigest, openBundle, type SignedBundle } from '../../workloads/bundle/index.ts'

const DIGEST_FILE = /^([0-9a-f]{64})\.spore$/

export class BundleStore {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
    mkdirSync(dir, { recursive: true })
  }

  private file (digest: string): string {
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`not a bundle digest: ${digest.slice(0, 80)}`)
    return join(this.dir, `${digest}.spore`)
  }

  has (digest: string): boolean {
    try {
      return statSync(this.file(digest)).isFile()
    } catch {
      return false
    }
  }

  /** Verifies and keeps `bytes`; `expected` is the digest the caller asked for. */
  put (bytes: Uint8Array, expected?: string): SignedBundle {
    const digest = bundleDigest(bytes)
    if (expected !== undefined && digest !== expected) throw new Error(`bundle bytes hash to ${digest}, not ${expected}`)
    const bundle = openBundle(bytes)
    if (!this.has(digest)) writeFileAtomic(this.file(digest), bytes)
    else utimesSync(this.file(digest), new Date(), new Date())
    return bundle
  }

  read (digest: string): Uint8Array | undefined {
    if (!this.has(digest)) return undefined
    return readFileSync(this.file(digest))
  }

  open (digest: string): SignedBundle | undefined {
    const bytes = this.read(digest)
    return bytes === undefined ? undefined : openBundle(bytes)
  }

  size (digest: string): number | undefined {
    try {
      return statSync(this.file(digest)).size
    } catch {
      return undefined
    }
  }

  /** Restarts the grace period of a bundle someone is about to use (a plan being signed for it). */
  touch (digest: string): void {
    if (this.has(digest)) utimesSync(this.file(digest), new Date(), new Date())
  }

  /** When this node last stored `digest` (ms since the epoch). */
  storedAt (digest: string): number | undefined {
    try {
      return statSync(this.file(digest)).mtimeMs
    } catch {
      return undefined
    }
  }

  digests (): string[] {
    return readdirSync(this.dir).map(f => DIGEST_FILE.exec(f)?.[1]).filter((d): d is string => d !== undefined)
  }

  remove (digest: string): void {
    removeIfExists(this.file(digest))
  }
}
