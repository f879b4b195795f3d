// A bundle written out to run: its files under a directory of their own. The paths are checked
// again here, since a SignedBundle may have been built by hand rather than by openBundle, and
// each file is created afresh (never through something already there), so nothing lands
// outside the directory.
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { pathProblem, pathSetProblem } from './bundle-path.ts'
import { InvalidBundleError, UnpackDirectoryNotEmptyError } from './errors.ts'
import type { SignedBundle } from './signed-bundle.ts'
import { shown } from './shown.ts'

const EXECUTABLE_MODE = 0o755
const FILE_MODE = 0o644
const DIRECTORY_MODE = 0o755

/** Writes the bundle's files under `dir`, which must be empty or absent. */
export async function unpackBundle (bundle: SignedBundle, dir: string): Promise<void> {
  for (const file of bundle.files) {
    const problem = pathProblem(file.path)
    if (problem !== undefined) throw new InvalidBundleError(`file path ${shown(file.path)} ${problem}`)
  }
  const problem = pathSetProblem(bundle.files.map(f => f.path))
  if (problem !== undefined) throw new InvalidBundleError(problem)

  const root = resolve(dir)
  await mkdir(root, { recursive: true, mode: DIRECTORY_MODE })
  const present = await readdir(root)
  if (present.length > 0) throw new UnpackDirectoryNotEmptyError(`${root} is not empty: a bundle is unpacked into a directory of its own`)

  for (const file of bundle.files) {
    const target = join(root, ...file.path.split('/'))
    if (!target.startsWith(root + sep)) throw new InvalidBundleError(`file path ${shown(file.path)} leads outside ${root}`)
    await mkdir(dirname(target), { recursive: true, mode: DIRECTORY_MODE })
    const mode = file.executable ? EXECUTABLE_MODE : FILE_MODE
    // 'wx' fails on anything already there, a symlink included
    await writeFile(target, file.bytes, { flag: 'wx', mode })
    // the umask may have taken bits off
    await chmod(target, mode)
  }
}
