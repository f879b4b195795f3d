// One output stream of an instance, kept on disk in bounded space: `<stream>.log` grows to
// maxBytes, then becomes `.1` (the older ones `.2`, `.3`; the oldest is dropped). A chunk that
// does not fit starts a new file, so output written at once usually stays in one file. Writes
// are synchronous, in arrival order; a failing disk loses output, never the daemon.
import { closeSync, fstatSync, openSync, renameSync, writeSync } from 'node:fs'
import { join } from 'node:path'

export const KEPT_OLD_FILES = 3

export type LogStream = 'stdout' | 'stderr'

export function logFile (logDir: string, stream: LogStream, age = 0): string {
  return join(logDir, age === 0 ? `${stream}.log` : `${stream}.log.${age}`)
}

export class RotatingLog {
  readonly #logDir: string
  readonly #stream: LogStream
  readonly #path: string
  readonly #maxBytes: number
  readonly #onError: (err: Error) => void
  #fd: number | undefined
  #size = 0

  constructor (logDir: string, stream: LogStream, maxBytes: number, onError: (err: Error) => void) {
    this.#logDir = logDir
    this.#stream = stream
    this.#path = logFile(logDir, stream)
    this.#maxBytes = Math.max(1, Math.floor(maxBytes))
    this.#onError = onError
    this.#open()
  }

  write (chunk: Uint8Array): void {
    let rest = chunk
    try {
      while (rest.length > 0 && this.#fd !== undefined) {
        if (this.#size > 0 && this.#size + rest.length > this.#maxBytes) this.#rotate()
        const piece = rest.subarray(0, this.#maxBytes - this.#size)
        this.#writeAll(piece)
        rest = rest.subarray(piece.length)
      }
    } catch (err) {
      this.#onError(err as Error)
    }
  }

  close (): void {
    if (this.#fd === undefined) return
    try { closeSync(this.#fd) } catch {}
    this.#fd = undefined
  }

  #open (): void {
    try {
      this.#fd = openSync(this.#path, 'a')
      this.#size = fstatSync(this.#fd).size
    } catch (err) {
      this.#fd = undefined
      this.#onError(err as Error)
    }
  }

  #writeAll (bytes: Uint8Array): void {
    let written = 0
    while (written < bytes.length) written += writeSync(this.#fd!, bytes, written)
    this.#size += bytes.length
  }

  #rotate (): void {
    this.close()
    for (let age = KEPT_OLD_FILES - 1; age >= 0; age--) {
      try {
        renameSync(logFile(this.#logDir, this.#stream, age), logFile(this.#logDir, this.#stream, age + 1))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    this.#open()
  }
}
