// Helpers for streams that start with one small length-prefixed frame and then carry raw bytes:
// the forward request and its answer. Bytes read past the frame are pushed back onto the stream.
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream } from '@libp2p/interface'
import { FrameTooLargeError, LinkClosedError } from './errors.ts'

/** Read one length-prefixed frame; any bytes after it stay on the stream for the next reader. */
export async function readSingleFrame (stream: Stream, maxBytes: number, signal?: AbortSignal): Promise<Uint8Array> {
  return await new Promise<Uint8Array>((resolve, reject) => {
    const buffer = new Uint8ArrayList()
    const cleanup = (): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onMessage = (event: { data: Uint8Array | Uint8ArrayList }): void => {
      buffer.append(event.data)
      if (buffer.byteLength < 4) return
      const length = buffer.getUint32(0)
      if (length > maxBytes) {
        cleanup()
        reject(new FrameTooLargeError(`frame of ${length} bytes exceeds ${maxBytes}`))
        return
      }
      if (buffer.byteLength < 4 + length) return
      cleanup()
      const body = buffer.subarray(4, 4 + length)
      if (buffer.byteLength > 4 + length) stream.unshift(buffer.sublist(4 + length))
      resolve(body)
    }
    const onClose = (): void => {
      cleanup()
      reject(new LinkClosedError('stream closed before its first frame'))
    }
    const onAbort = (): void => {
      cleanup()
      reject(signal?.reason ?? new Error('aborted'))
    }
    if (signal?.aborted === true) {
      onAbort()
      return
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}

export function writeSingleFrame (stream: Stream, body: Uint8Array): boolean {
  const frame = new Uint8Array(4 + body.length)
  new DataView(frame.buffer).setUint32(0, body.length)
  frame.set(body, 4)
  return stream.send(frame)
}

/**
 * Carry bytes from `from` to `to` with backpressure: when `to` cannot take more, `from` is
 * paused (its peer stops getting window) until `to` drains.
 */
function pipeOneWay (from: Stream, to: Stream, onBytes: (count: number) => void): void {
  from.addEventListener('message', (event) => {
    if (to.status !== 'open' || to.writeStatus !== 'writable') return
    onBytes(event.data.byteLength)
    if (!to.send(event.data)) {
      // A stream already closing cannot be paused (libp2p throws, from an event listener: the
      // whole process); its last bytes are bounded by its read buffer anyway.
      if (from.status !== 'open') return
      from.pause()
      to.onDrain().then(() => {
        if (from.status === 'open') from.resume()
      }, () => {})
    }
  })
  from.addEventListener('remoteCloseWrite', () => {
    to.close().catch(() => {})
  })
}

/**
 * The most a yamux peer may still send after this side paused (its stream window, which grows
 * to 16 MiB on a fast stream): a paused stream must be able to buffer that much, or a sender
 * that respects the window has its stream aborted (StreamBufferError).
 */
const MUXER_WINDOW_BYTES = 16 * 1024 * 1024

/**
 * Join two streams both ways until either side closes. Each stream buffers at most
 * `bufferBytes` plus one muxer window: pausing the reading side stops its window updates, so
 * the sender stops within a window.
 */
export function spliceStreams (a: Stream, b: Stream, bufferBytes: number, onBytes: (count: number) => void = () => {}): Promise<void> {
  for (const stream of [a, b]) {
    stream.maxReadBufferLength = bufferBytes + MUXER_WINDOW_BYTES
    stream.maxWriteBufferLength = bufferBytes + MUXER_WINDOW_BYTES
  }
  pipeOneWay(a, b, onBytes)
  pipeOneWay(b, a, onBytes)
  return new Promise<void>((resolve) => {
    let done = false
    const finish = (other: Stream) => (event: { error?: Error }): void => {
      if (other.status === 'open') {
        if (event.error != null) other.abort(event.error)
        else other.close().catch(() => {})
      }
      if (!done) {
        done = true
        resolve()
      }
    }
    a.addEventListener('close', finish(b))
    b.addEventListener('close', finish(a))
  })
}
