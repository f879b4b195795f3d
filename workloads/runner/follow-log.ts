// `tail -f` of an instance's output: optionally the last bytes already written, then every new
// byte of `<stream>.log`, until aborted. It wakes on the kernel's change events for the log
// directory (fs.watch: inotify on Linux), not on a timer: idle output costs nothing, and a line
// shows as soon as it is written. The directory is watched rather than the file because a
// rotation renames the file away and creates a new one; both are events of the directory. At
// a rotation the file being read is read to its end, then the files rotated after it (found by
// inode among `.1` … `.3`), then the new one from its start, all opened before any is read so
// that later rotations cannot move them away: nothing is missed unless the output outruns all
// three old files before the follower gets to look.
// Where the platform gives no change events (fs.watch fails: no inotify instances left, a
// file system without notifications, a directory not there yet) it polls every 100 ms instead.
// Bytes are decoded as UTF-8 with characters kept whole across reads.
// `onData` may return a promise: the follow reads no further until it settles, so a consumer
// that forwards the output (a follower on another node) holds the reading back instead of
// buffering what it cannot pass on.
import { watch, type FSWatcher } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'
import { StringDecoder } from 'node:string_decoder'
import { setTimeout as sleep } from 'node:timers/promises'
import { KEPT_OLD_FILES, logFile, type LogStream } from './rotating-log.ts'
import { readTail } from './read-log.ts'

const POLL_MS = 100
/** tries to open the files of a rotation while no further rotation moves them (a burst rotates every few milliseconds) */
const HOLD_ATTEMPTS = 5
const READ_BYTES = 64 * 1024

export interface FollowOptions {
  /** first hand on up to this many bytes written before the follow began (across rotated files) */
  tailBytes?: number
  /** what drove the follow, for tests and status: change events or the fallback poll, and how many looks at the files it took */
  counters?: FollowCounters
  /** once aborted, the follow reads what the files hold by then and returns (the instance stopped: its last words are on disk) */
  until?: AbortSignal
  /** called once the file is open, before the tail: every byte written from then on is handed on */
  started?: () => void | Promise<void>
}

export interface FollowCounters { mode?: 'watch' | 'poll', checks: number }

export async function followLog (logDir: string, stream: LogStream, onData: (chunk: string) => void | Promise<void>, signal: AbortSignal, options: FollowOptions = {}): Promise<void> {
  const decoder = new StringDecoder('utf8')
  const buffer = Buffer.alloc(READ_BYTES)
  const counters = options.counters ?? { checks: 0 }
  let file: FileHandle | undefined
  let inode = -1
  let position = 0

  async function openFile (path: string, from: 'start' | 'end'): Promise<boolean> {
    try {
      file = await open(path, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
    const info = await file.stat()
    inode = info.ino
    position = from === 'end' ? info.size : 0
    return true
  }

  async function readOn (): Promise<void> {
    if (file === undefined) return
    // an aborted follow stops between reads: its consumer takes nothing more
    while (!signal.aborted) {
      const { bytesRead } = await file.read(buffer, 0, READ_BYTES, position)
      if (bytesRead === 0) return
      position += bytesRead
      const text = decoder.write(buffer.subarray(0, bytesRead))
      if (text.length > 0) await onData(text)
    }
  }

  /** Opens `path` onto the end of `handles`, unless it is not there or is a file held already. */
  async function hold (handles: FileHandle[], path: string): Promise<void> {
    let handle: FileHandle
    try {
      handle = await open(path, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    const { ino } = await handle.stat()
    const held = await Promise.all(handles.map(async h => (await h.stat()).ino))
    if (ino === inode || held.includes(ino)) await handle.close()
    else handles.push(handle)
  }

  async function closeFile (): Promise<void> {
    await file?.close()
    file = undefined
  }

  /** The age (1 … 3) the file being read has reached by now, or none when it was dropped. */
  async function ageOfCurrent (): Promise<number | undefined> {
    for (let age = 1; age <= KEPT_OLD_FILES; age++) {
      if ((await stat(logFile(logDir, stream, age)).catch(() => undefined))?.ino === inode) return age
    }
    return undefined
  }

  /** What was written before: the older files' tails, then the current file up to where the follow starts. */
  async function tail (bytes: number): Promise<void> {
    const pieces: Buffer[] = []
    let gathered = 0
    if (file !== undefined) {
      const length = Math.min(position, bytes)
      const piece = Buffer.alloc(length)
      const { bytesRead } = await file.read(piece, 0, length, position - length)
      pieces.push(piece.subarray(0, bytesRead))
      gathered += bytesRead
    }
    for (let age = 1; age <= KEPT_OLD_FILES && gathered < bytes; age++) {
      const piece = await readTail(logFile(logDir, stream, age), bytes - gathered)
      pieces.unshift(piece)
      gathered += piece.length
    }
    const text = decoder.write(Buffer.concat(pieces))
    if (text.length > 0) await onData(text)
  }

  /** Reads what is new; follows a rotation or a truncation. */
  async function check (): Promise<void> {
    counters.checks++
    for (;;) {
      await readOn()
      const current = await stat(logFile(logDir, stream)).catch(() => undefined)
      if (current !== undefined && current.ino !== inode) {
        // every file written after ours is opened before any is read: read one by one by name,
        // a slow consumer would find the names moved on by later rotations and skip a file
        const after: FileHandle[] = []
        try {
          // a rotation while they are opened shifts every name: then they are opened again
          for (let attempt = 0; attempt < HOLD_ATTEMPTS; attempt++) {
            for (const handle of after.splice(0)) await handle.close()
            const age = file === undefined ? 0 : await ageOfCurrent() ?? KEPT_OLD_FILES + 1
            for (let younger = age - 1; younger >= 1; younger--) await hold(after, logFile(logDir, stream, younger))
            await hold(after, logFile(logDir, stream))
            const newest = after.length === 0 ? undefined : (await after[after.length - 1].stat()).ino
            const ageNow = file === undefined ? 0 : await ageOfCurrent() ?? KEPT_OLD_FILES + 1
            if (ageNow === age && (await stat(logFile(logDir, stream)).catch(() => undefined))?.ino === newest) break
          }
          await readOn()
          await closeFile()
          while (after.length > 0 && !signal.aborted) {
            file = after.shift()!
            inode = (await file.stat()).ino
            position = 0
            // the newest is read on by the loop, and followed
            if (after.length === 0) break
            await readOn()
            await closeFile()
          }
        } finally {
          for (const handle of after) await handle.close()
        }
        if (signal.aborted) return
        continue
      }
      if (current !== undefined && current.size < position) position = 0 // truncated in place
      return
    }
  }

  // change events: `pending` is set by every event, so one that comes during a check makes
  // another check follow at once; events that come together cost one check
  let pending = true
  let wake: (() => void) | undefined
  let watcher: FSWatcher | undefined
  const onEvent = (): void => { pending = true; wake?.() }
  const until = options.until
  const nextEvent = async (): Promise<void> => {
    if (pending || signal.aborted || until?.aborted === true) return
    await new Promise<void>(resolve => { wake = resolve })
    wake = undefined
  }
  signal.addEventListener('abort', onEvent, { once: true })
  until?.addEventListener('abort', onEvent, { once: true })
  try {
    // persistent: the follow is what keeps a `mycelium app logs -f` process alive between events
    watcher = watch(logDir, { persistent: true }, onEvent)
    // a watch that breaks (its directory removed, a kernel error) leaves the poll to carry on
    watcher.on('error', () => { watcher?.close(); watcher = undefined; counters.mode = 'poll'; onEvent() })
    counters.mode = 'watch'
  } catch {
    counters.mode = 'poll'
  }

  try {
    await openFile(logFile(logDir, stream), 'end')
    await options.started?.()
    if ((options.tailBytes ?? 0) > 0) await tail(options.tailBytes!)
    while (!signal.aborted) {
      pending = false
      const last = until?.aborted === true
      await check()
      if (last) return
      if (watcher !== undefined) await nextEvent()
      else await sleep(POLL_MS, undefined, { signal: until === undefined ? signal : AbortSignal.any([signal, until]) }).catch(() => {})
    }
  } finally {
    signal.removeEventListener('abort', onEvent)
    until?.removeEventListener('abort', onEvent)
    watcher?.close()
    await closeFile()
  }
}
