// Finding the file a command names, as exec would: a name with a slash is that file, a bare name
// the first executable file of that name along PATH. Needed where the exec itself happens out of
// the runner's sight (behind unshare), so that a command that cannot run is still told apart
// from one that ran and failed.
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, join, resolve } from 'node:path'

/** the file to exec, or why there is none: ENOENT (nothing there) or EACCES (there, but not runnable) */
export type LocatedCommand = { file: string } | { errno: 'ENOENT' | 'EACCES' }

/** `dir` is where the process will start: relative names and PATH entries are read from there. */
export function locateExecutable (command: string, options: { PATH: string, dir: string }): LocatedCommand {
  if (command.includes('/')) {
    const file = resolve(options.dir, command)
    if (executableFile(file)) return { file }
    return { errno: existsAtAll(file) ? 'EACCES' : 'ENOENT' }
  }
  for (const entry of options.PATH.split(delimiter)) {
    // an empty PATH entry is the working directory
    const file = resolve(options.dir, join(entry === '' ? '.' : entry, command))
    if (executableFile(file)) return { file }
  }
  return { errno: 'ENOENT' }
}

export function executableFile (path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

function existsAtAll (path: string): boolean {
  try {
    statSync(path)
    return true
  } catch {
    return false
  }
}
