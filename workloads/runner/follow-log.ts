// `tail -f` of an instance's output: from the current end of `<stream>.log`, every new byte,
// until aborted. The file is polled. At a rotation the file being read is read to its end,
// then the files rotated after it (found by inode among `.1` … `.3`), then the new one from its
// start: nothing is missed unless the output outruns all three old files between two polls.
// Bytes are decoded as UTF-8 with characters kept whole across reads.
import { open, stat, type FileHandle } from 'node:fs/promises'
import { StringDecoder } from 'node:string_decoder'
import { setTimeout as sleep } from 'node:timers/promises'
import { KEPT_OLD_FILES, logFile, type LogStream } from './rotating-log.ts'

const POLL_MS = 100
const READ_BYTES = 64 * 1024

export async function followLog (logDir: string, stream: LogStream, onData: (chunk: string) => void, signal: AbortSignal): Promise<void> {
  const decoder = new StringDecoder('utf8')
  const buffer = Buffer.alloc(READ_BYTES)
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
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, READ_BYTES, position)
      if (bytesRead === 0) return
      position += bytesRead
      const text = decoder.write(buffer.subarray(0, bytesRead))
      if (text.length > 0) onData(text)
    }
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

  try {
    await openFile(logFile(logDir, stream), 'end')
    while (!signal.aborted) {
      await readOn()
      const current = await stat(logFile(logDir, stream)).catch(() => undefined)
      if (current !== undefined && current.ino !== inode) {
        if (file !== undefined) {
          await readOn()
          const age = await ageOfCurrent() ?? KEPT_OLD_FILES + 1
          await closeFile()
          for (let younger = age - 1; younger >= 1; younger--) {
            if (await openFile(logFile(logDir, stream, younger), 'start')) await readOn()
            await closeFile()
          }
        }
        await openFile(logFile(logDir, stream), 'start')
        continue
      }
      if (current !== undefined && current.size < position) position = 0 // truncated in place
      await sleep(POLL_MS, undefined, { signal }).catch(() => {})
    }
  } finally {
    await closeFile()
  }
}
