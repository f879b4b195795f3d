// Writes into the home directory never leave a half-written file: data goes to a temporary
// file first and is renamed over the target. Secrets are created 0600.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync, existsSync, unlinkSync, statSync } from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
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

/**
 * writeFileAtomic off the event loop: the write and the fsync run on libuv's threads (an fsync
 * on a slow disk blocked a daemon's loop for milliseconds at every save of a file that changes
 * often). The caller keeps to one write at a time per file.
 */
export async function writeFileAtomicAsync (path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-async`
  const file = await open(tmp, 'w', mode)
  try {
    await file.writeFile(typeof data === 'string' ? Buffer.from(data) : data)
    await file.sync()
  } finally {
    await file.close()
  }
  await rename(tmp, path)
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
    // the cause tells a validator's refusal from a validator that tripped over the content
    throw new HomeError(`${path} is corrupted (${(err as Error).message}); restore it from a backup or move it away`, { cause: err })
  }
}

export function removeIfExists (path: string): void {
  try {
    unlinkSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}

// Cross-process lock for read-modify-write of a home file (invites.json, members.json): the
// daemon (admissions) and the CLI (`network invite`, `network rotate-invites`) both update
// them, and without a lock a write based on an old read brings back a used or revoked invite.
// The lock is `<file>.lock`, created with O_EXCL and holding the owner's pid. A lock whose
// owner is dead, or that is older than LOCK_STALE_MS (every holder keeps it for one small
// file read and write), is broken, under a second O_EXCL lock so two processes never both
// break it and one of them removes the other's fresh lock.
const LOCK_STALE_MS = 30_000
const LOCK_WAIT_MS = 15_000
const sleeper = new Int32Array(new SharedArrayBuffer(4))

function sleepSync (ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms)
}

function tryCreate (path: string): boolean {
  try {
    const fd = openSync(path, 'wx', 0o600)
    try { writeSync(fd, Buffer.from(`${process.pid}\n`)) } finally { closeSync(fd) }
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw new HomeError(`cannot create ${path}: ${(err as Error).message}`)
  }
}

function lockState (path: string): { pid: number, ageMs: number } | undefined {
  try {
    const ageMs = Date.now() - statSync(path).mtimeMs
    return { pid: Number.parseInt(readFileSync(path, 'utf8'), 10), ageMs }
  } catch {
    return undefined
  }
}

function isAlive (pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function isStale (state: { pid: number, ageMs: number }): boolean {
  // a lock file just created may not hold its pid yet: give its owner a moment to write it
  if (Number.isNaN(state.pid)) return state.ageMs > 1_000
  return state.ageMs > LOCK_STALE_MS || !isAlive(state.pid)
}

function breakIfStale (lock: string): void {
  const breaker = `${lock}.break`
  if (!tryCreate(breaker)) {
    const b = lockState(breaker)
    if (b !== undefined && b.ageMs > 5_000) removeIfExists(breaker)
    return
  }
  try {
    const state = lockState(lock)
    if (state !== undefined && isStale(state)) removeIfExists(lock)
  } finally {
    removeIfExists(breaker)
  }
}

/** Runs fn while holding the cross-process lock of the home file at path. */
export function withFileLock<T> (path: string, fn: () => T): T {
  // no directory, no file to update: fn fails or finds nothing on its own
  if (!existsSync(dirname(path))) return fn()
  const lock = `${path}.lock`
  const deadline = Date.now() + LOCK_WAIT_MS
  for (let attempt = 0; !tryCreate(lock); attempt++) {
    const state = lockState(lock)
    if (state !== undefined && isStale(state)) { breakIfStale(lock); continue }
    if (Date.now() > deadline) throw new HomeError(`${path} stays locked by process ${state?.pid ?? '?'} (${lock}); if no mycelium process is running, remove the lock file`)
    sleepSync(Math.min(1 + attempt, 20))
  }
  try {
    return fn()
  } finally {
    removeIfExists(lock)
  }
}
