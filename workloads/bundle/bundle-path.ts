// Paths of the files inside a bundle. Every node that runs the application writes them to its
// disk, so one spelling per file is allowed: relative POSIX, plain components of
// [A-Za-z0-9._-], no '.' or '..', nothing that could name a place outside the bundle.
import { shown } from './shown.ts'

export const MAX_PATH_LENGTH = 255
export const MAX_FILES = 4096

const COMPONENT = /^[A-Za-z0-9._-]+$/

/** Why `path` is not a bundle path, or undefined when it is one. */
export function pathProblem (path: unknown): string | undefined {
  if (typeof path !== 'string' || path.length === 0) return 'must be a non-empty string'
  if (path.length > MAX_PATH_LENGTH) return `is longer than ${MAX_PATH_LENGTH} characters`
  if (path.startsWith('/')) return 'must be relative (it starts with /)'
  for (const component of path.split('/')) {
    if (component === '') return 'has an empty component (// or a trailing /)'
    if (component === '.' || component === '..') return `has a '${component}' component`
    if (!COMPONENT.test(component)) return 'has characters outside A-Z a-z 0-9 . _ -'
  }
  return undefined
}

/**
 * Why these (individually valid) paths cannot be the files of one bundle, or undefined. A path
 * that is both a file and a directory of another ("a" and "a/b") could not be written out.
 */
export function pathSetProblem (paths: readonly string[]): string | undefined {
  if (paths.length > MAX_FILES) return `${paths.length} files, more than the ${MAX_FILES} a bundle may hold`
  const seen = new Set<string>()
  for (const path of paths) {
    if (seen.has(path)) return `the file ${shown(path)} appears twice`
    seen.add(path)
  }
  for (const path of paths) {
    for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/', slash + 1)) {
      const directory = path.slice(0, slash)
      if (seen.has(directory)) return `${shown(directory)} is both a file and the directory of ${shown(path)}`
    }
  }
  return undefined
}
