// An author's directory packed into a bundle: DIR/manifest.json is the manifest and every
// other regular file under DIR is a file of the bundle. Nothing is left out silently: a name a
// bundle cannot carry, a symlink out of DIR, a socket or a device stops the packing with its
// path, so what runs on the mesh is exactly what the author sees in DIR.
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { pathProblem, MAX_FILES } from './bundle-path.ts'
import type { BundleFile } from './contents.ts'
import { InvalidBundleError, InvalidManifestError } from './errors.ts'
import { parseManifest, type AppManifest } from './manifest.ts'
import { packBundle, bundleDigest, MAX_BUNDLE_BYTES } from './signed-bundle.ts'

const MANIFEST_FILE = 'manifest.json'
const MAX_MANIFEST_BYTES = 1024 * 1024

/** A file found under DIR, not read yet. */
interface FoundFile {
  path: string
  /** Where its bytes are: the file itself, or the target of a symlink inside DIR. */
  source: string
  size: number
  executable: boolean
}

interface Listing {
  found: FoundFile[]
  /** Their sizes added up, to stop before reading more than a bundle may hold. */
  bytes: number
}

/**
 * Packs DIR. With the same files, key and `signedAt` it gives the same bytes (paths are sorted,
 * the encoding is canonical, Ed25519 signatures are deterministic).
 */
export async function packDirectory (dir: string, options: { secretKey: Uint8Array, grant?: Uint8Array, signedAt?: number }): Promise<{ bytes: Uint8Array, digest: string, manifest: AppManifest }> {
  const root = await realpath(dir)
  const listing: Listing = { found: [], bytes: 0 }
  await collect(root, '', dir, listing)
  const found = listing.found
  const manifestFile = found.find(f => f.path === MANIFEST_FILE)
  if (manifestFile === undefined) throw new InvalidManifestError(`${join(dir, MANIFEST_FILE)}: not found; a bundle directory needs a manifest`)
  const manifest = await readManifest(manifestFile, join(dir, MANIFEST_FILE))

  const files: BundleFile[] = []
  let total = 0
  for (const f of found) {
    if (f === manifestFile) continue
    const bytes = await readFile(f.source)
    // checked again after reading: a file may have grown since it was listed
    total += bytes.length
    if (total > MAX_BUNDLE_BYTES) throw tooLarge(dir)
    files.push({ path: f.path, bytes, executable: f.executable })
  }
  const bytes = packBundle({ manifest, files, secretKey: options.secretKey, grant: options.grant, signedAt: options.signedAt })
  return { bytes, digest: bundleDigest(bytes), manifest }
}

async function readManifest (file: FoundFile, shownPath: string): Promise<AppManifest> {
  if (file.size > MAX_MANIFEST_BYTES) throw new InvalidManifestError(`${shownPath}: larger than ${MAX_MANIFEST_BYTES} bytes`)
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(file.source, 'utf8'))
  } catch (err) {
    if (err instanceof SyntaxError) throw new InvalidManifestError(`${shownPath}: not valid JSON: ${err.message}`)
    throw err
  }
  try {
    return parseManifest(raw)
  } catch (err) {
    if (err instanceof InvalidManifestError) throw new InvalidManifestError(`${shownPath}: ${err.message}`)
    throw err
  }
}

/** Lists the files under `root`/`prefix`, refusing what a bundle cannot carry. */
async function collect (root: string, prefix: string, dir: string, listing: Listing): Promise<void> {
  const entries = await readdir(prefix === '' ? root : join(root, prefix), { withFileTypes: true })
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  for (const entry of entries) {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    const shownPath = join(dir, path)
    const problem = pathProblem(path)
    if (problem !== undefined) throw new InvalidBundleError(`${shownPath}: a bundle path ${problem}`)
    const absolute = join(root, path)
    if (entry.isDirectory()) {
      await collect(root, path, dir, listing)
      continue
    }
    const linked = entry.isSymbolicLink()
    const source = linked ? await symlinkTarget(root, absolute, shownPath) : absolute
    const info = linked ? await stat(source) : await lstat(absolute)
    if (linked && info.isDirectory()) throw new InvalidBundleError(`${shownPath}: a symlink to a directory; bundles hold files, copy the directory instead`)
    if (!info.isFile()) throw new InvalidBundleError(`${shownPath}: not a regular file`)
    listing.found.push({ path, source, size: info.size, executable: (info.mode & 0o111) !== 0 })
    listing.bytes += info.size
    // one more than MAX_FILES: manifest.json is listed but is not a file of the bundle
    if (listing.found.length > MAX_FILES + 1) throw new InvalidBundleError(`${dir}: more than the ${MAX_FILES} files a bundle may hold`)
    if (listing.bytes > MAX_BUNDLE_BYTES) throw tooLarge(dir)
  }
}

async function symlinkTarget (root: string, link: string, shownPath: string): Promise<string> {
  let target: string
  try {
    target = await realpath(link)
  } catch {
    throw new InvalidBundleError(`${shownPath}: a symlink to nothing`)
  }
  if (target !== root && !target.startsWith(root + sep)) throw new InvalidBundleError(`${shownPath}: a symlink pointing outside the directory (to ${target})`)
  return target
}

function tooLarge (dir: string): InvalidBundleError {
  return new InvalidBundleError(`${dir}: its files are larger than the ${MAX_BUNDLE_BYTES} bytes a bundle may be`)
}
