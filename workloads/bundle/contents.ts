// What a bundle holds must fit its manifest: every path writable, and every file the manifest
// names present, so a node learns that a bundle cannot start when it opens it, not when it
// runs it. Checked when packing (an author's mistake) and when opening (a peer's bytes).
import { pathProblem, pathSetProblem } from './bundle-path.ts'
import { InvalidBundleError } from './errors.ts'
import { ARCHES, type AppManifest } from './manifest.ts'
import { shown } from './shown.ts'

export interface BundleFile {
  /** Relative POSIX path (see bundle-path.ts). */
  path: string
  bytes: Uint8Array
  executable: boolean
}

export function checkContents (manifest: AppManifest, files: readonly BundleFile[]): void {
  for (const file of files) {
    const problem = pathProblem(file.path)
    if (problem !== undefined) throw new InvalidBundleError(`file path ${shown(file.path)} ${problem}`)
  }
  const paths = files.map(f => f.path)
  const problem = pathSetProblem(paths)
  if (problem !== undefined) throw new InvalidBundleError(problem)

  const byPath = new Map(files.map(f => [f.path, f]))
  // a command without a slash that is not in the bundle is a program on PATH ("node")
  if (manifest.command !== undefined && manifest.command.includes('/') && !byPath.has(manifest.command)) {
    throw new InvalidBundleError(`command ${shown(manifest.command)} is not a file in the bundle`)
  }
  if (manifest.wasm !== undefined && !byPath.has(manifest.wasm)) throw new InvalidBundleError(`wasm ${shown(manifest.wasm)} is not a file in the bundle`)
  for (const arch of ARCHES) {
    const path = manifest.binaries?.[arch]
    if (path === undefined) continue
    const file = byPath.get(path)
    if (file === undefined) throw new InvalidBundleError(`binaries.${arch} ${shown(path)} is not a file in the bundle`)
    if (!file.executable) throw new InvalidBundleError(`binaries.${arch} ${shown(path)} is not marked executable`)
  }
}
