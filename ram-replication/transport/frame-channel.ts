// Length-prefixed frames (u32 big-endian length, then the body) over a libp2p 3 message stream.
// Sending honours the stream's backpressure (send() → false → wait for drain); receiving
// reassembles frames from 'message' events and refuses lengths above a bound before buffering.
//
// Frames sent in the same turn of the event loop leave as one contiguous buffer in one
// stream.send(). Profiled (1 sealed link through a forwarder, loopback): one send per 128 KiB
// stripe made one yamux frame per stripe, so each hop carried per stripe a yamux window update
// back and a short noise message for the frame's tail past the last full 64 KiB, and a frame
// handed on as pieces (length, seq, ciphertext, tag) became one cipher call and one socket write
// per piece in noise and TCP. Joined, a batch of stripes crosses noise as full messages.
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream } from '@libp2p/interface'
import { FrameTooLargeError, LinkClosedError } from './errors.ts'
import type { FrameOpener, FrameSealer } from './link-seal.ts'

export interface FrameChannelOptions {
  maxFrameBytes: number
  /** `opened`: the frame came through the seal (FrameOpener authenticated it), not in the clear. */
  onFrame: (body: Uint8Array, opened: boolean) => void
  onClose?: (error?: Error) => void
}

export class FrameChannel {
  readonly stream: Stream
  private readonly buffer = new Uint8ArrayList()
  private readonly maxFrameBytes: number
  private readonly onFrame: (body: Uint8Array, opened: boolean) => void
  private onClose?: (error?: Error) => void
  private closed = false
  private sealer?: FrameSealer
  private opener?: FrameOpener
  /** Flushes in order: each waits for the one before it. */
  private writeTail: Promise<void> = Promise.resolve()
  /** Frames (length prefix and body pieces) sent since the last flush started, in send() order. */
  private queued: Uint8Array[] = []
  /** The flush that will carry `queued`; undefined once it has taken them. */
  private queuedFlush?: Promise<void>
  bytesSent = 0
  bytesReceived = 0

  constructor (stream: Stream, options: FrameChannelOptions) {
    this.stream = stream
    this.maxFrameBytes = options.maxFrameBytes
    this.onFrame = options.onFrame
    this.onClose = options.onClose
    stream.addEventListener('message', (event) => {
      if (this.closed) return
      this.buffer.append(event.data)
      this.bytesReceived += event.data.byteLength
      try {
        this.drainFrames()
      } catch (error) {
        this.abort(error as Error)
      }
    })
    // Frames only make sense both ways: when the remote stops sending, this end closes too (the
    // frames it sent before, a release say, were handed on as they arrived).
    stream.addEventListener('remoteCloseWrite', () => {
      this.close().catch(() => {})
    })
    stream.addEventListener('close', (event) => {
      this.finish(event.error ?? new LinkClosedError('stream closed'))
    })
    if (stream.status !== 'open') queueMicrotask(() => this.finish(new LinkClosedError(`stream is ${stream.status}`)))
  }

  get isOpen (): boolean {
    return !this.closed
  }

  private drainFrames (): void {
    while (!this.closed && this.buffer.byteLength >= 4) {
      const length = this.buffer.getUint32(0)
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(`frame of ${length} bytes exceeds ${this.maxFrameBytes}`)
      if (this.buffer.byteLength < 4 + length) return
      const body = this.buffer.subarray(4, 4 + length)
      this.buffer.consume(4 + length)
      // A frame that fails to open (replayed, reordered, forged) throws here: the channel closes
      // and drops the rest.
      if (this.opener == null) this.onFrame(body, false)
      else this.onFrame(this.opener.open(body), true)
    }
  }

  /** From now on frames are sealed both ways (frames already received were read in the clear). */
  seal (sealer: FrameSealer, opener: FrameOpener): void {
    this.sealer = sealer
    this.opener = opener
  }

  /**
   * Send one frame made of `chunks`; resolves once the stream accepted it (waits for drain).
   * Frames leave in the order send() was called, those of one turn in one stream.send().
   */
  async send (chunks: Uint8Array | readonly Uint8Array[], options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.closed) throw new LinkClosedError('channel closed')
    const parts = chunks instanceof Uint8Array ? [chunks] : chunks
    // Sealed (or not) now: the sequence numbers follow call order, and so do the writes.
    const body = this.sealer != null ? this.sealer.seal(parts) : parts
    const prefix = new Uint8Array(4)
    let length = 0
    for (const part of body) length += part.byteLength
    new DataView(prefix.buffer).setUint32(0, length)
    this.queued.push(prefix, ...body)
    if (this.queuedFlush == null) {
      const flush = this.writeTail.then(async () => { await this.flush(options) })
      this.writeTail = flush.catch(() => {})
      this.queuedFlush = flush
    }
    await this.queuedFlush
  }

  private async flush (options: { signal?: AbortSignal }): Promise<void> {
    try {
      if (this.stream.writableNeedsDrain) await this.stream.onDrain(options)
    } catch (error) {
      this.takeQueued()
      throw error
    }
    // Frames sent while this flush waited for drain go with it.
    const parts = this.takeQueued()
    if (this.closed) throw new LinkClosedError('channel closed')
    const data = parts.length === 1 ? parts[0] : Buffer.concat(parts)
    this.bytesSent += data.byteLength
    if (!this.stream.send(data)) await this.stream.onDrain(options)
  }

  private takeQueued (): Uint8Array[] {
    const parts = this.queued
    this.queued = []
    this.queuedFlush = undefined
    return parts
  }

  abort (error: Error): void {
    if (this.closed) return
    this.stream.abort(error)
    this.finish(error)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.buffer.consume(this.buffer.byteLength)
    try {
      await this.stream.close({ signal: AbortSignal.timeout(1000) })
    } catch (error) {
      this.stream.abort(error as Error)
    }
    const onClose = this.onClose
    this.onClose = undefined
    onClose?.()
  }

  private finish (error?: Error): void {
    if (this.closed && this.onClose == null) return
    this.closed = true
    this.buffer.consume(this.buffer.byteLength)
    const onClose = this.onClose
    this.onClose = undefined
    onClose?.(error)
  }
}
