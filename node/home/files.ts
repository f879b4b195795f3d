// Writes into the home directory never leave a half-written file: data goes to a temporary
// file first and is renamed over the target. Secrets are created 0600.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync, existsSync, unlinkSync } from 'node:fs'
import { HomeError } from './errors.ts'

export function writeFileAtomic (path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', mode)
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
}

/** Creates a file that must not exist yet (keys): never overwrites. */
export function createFileExclusive (path: string, data: string | Uint8Array, mode = 0o600): void {
  let fd: number
  try {
    fd = openSync(path, 'wx', mode)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new HomeError(`${path} already exists; refusing to overwrite it`)
    throw new HomeError(`cannot create ${path}: ${(err as Error).message}`)
  }
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

export function readJson<T> (path: string, validate: (value: unknown) => T): T | undefined {
  if (!existsSync(path)) return undefined
  let value: unknown
  try {
    value = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new HomeError(`${path} is corrupted (${(err as Error).message}); restore it from a backup or move it away`)
  }
  try {
    return validate(value)
  } catch (err) {
    throw new HomeError(`${path} is corrupted (${(err as Error).message}); restore it from a backup or move it away`)
  }
}

export function removeIfExists (path: string): void {
  try {
    unlinkSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
