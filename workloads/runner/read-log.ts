// The newest output of an instance, read back across its rotated files (newest first, until
// enough bytes are gathered). A file rotated while it is read may make the result skip or
// repeat a piece at the seam; it is for people and status pages, not for replay.
import { open } from 'node:fs/promises'
import { KEPT_OLD_FILES, logFile, type LogStream } from './rotating-log.ts'

export const DEFAULT_TAIL_BYTES = 64 * 1024

export async function readLog (logDir: string, stream: LogStream, options: { tailBytes?: number } = {}): Promise<string> {
  const wanted = options.tailBytes ?? DEFAULT_TAIL_BYTES
  const pieces: Buffer[] = []
  let gathered = 0
  for (let age = 0; age <= KEPT_OLD_FILES && gathered < wanted; age++) {
    const piece = await readTail(logFile(logDir, stream, age), wanted - gathered)
    pieces.unshift(piece)
    gathered += piece.length
  }
  return Buffer.concat(pieces).toString('utf8')
}

/** The last bytes of one file; nothing when it is not there. */
export async function readTail (path: string, bytes: number): Promise<Buffer> {
  let file
  try {
    file = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0)
    throw err
  }
  try {
    const { size } = await file.stat()
    const length = Math.min(size, Math.max(0, bytes))
    const buffer = Buffer.alloc(length)
    const { bytesRead } = await file.read(buffer, 0, length, size - length)
    return buffer.subarray(0, bytesRead)
  } finally {
    await file.close()
  }
}
