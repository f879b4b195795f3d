// One gateway stream seen from either end: a head and a body each way, in frames, with credit.
// A reader frame loop runs for the stream's whole life and checks every frame against the
// protocol (a head first and once, data only within the credit this end granted, one end, no
// credit beyond the window): a peer that breaks it gets the stream aborted with a clear error,
// and only that stream. This end holds at most WINDOW_BYTES of the peer's body it has not yet
// handed on (`peakUnread` records the most it ever held), and sends body bytes only as the peer
// grants them, so a peer that never reads stalls the sender instead of filling its memory.
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { decodeFrame, encodeFrame, InvalidGatewayMessageError, MAX_FRAME_BYTES, WINDOW_BYTES } from './gateway-messages.ts'

export class GatewayStreamError extends Error {
  readonly name = 'GatewayStreamError'
}

export interface ChannelCounters {
  /** body bytes received from the peer */
  received: number
  /** body bytes sent to the peer */
  sent: number
  /** the most body bytes received and not yet handed on at any moment */
  peakUnread: number
}

interface Waiter { resolve: () => void, reject: (err: Error) => void }

export class GatewayChannel {
  readonly counters: ChannelCounters = { received: 0, sent: 0, peakUnread: 0 }
  private readonly stream: Stream
  private readonly lp: ReturnType<typeof lpStream>
  private readonly idleMs: number
  private idle: NodeJS.Timeout | undefined
  private failure: Error | undefined
  private head: Uint8Array | undefined
  private readonly chunks: Uint8Array[] = []
  private unread = 0
  /** body bytes handed on since the last credit frame */
  private consumed = 0
  private ended = false
  /** body bytes the peer still takes */
  private credit: number
  /** whoever waits for the next frame (or the failure) */
  private waiters: Waiter[] = []
  /** resolves with the reason once the stream has failed (never rejects) */
  readonly failed: Promise<Error>
  private onFailed!: (err: Error) => void
  private finished = false
  /** the peer sent its body's end and closed its side: nothing more comes, credit included */
  private peerDone = false

  /**
   * `sendCredit`: body bytes the peer takes before its first credit frame (an answer's reader
   * takes a window at once; a request's body waits until the far end has an instance for it).
   * `recvCredit` is the same number as the peer sees it.
   */
  constructor (stream: Stream, options: { sendCredit: number, recvCredit: number, idleMs: number }) {
    this.stream = stream
    this.lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES + 1 })
    this.credit = options.sendCredit
    this.granted = options.recvCredit
    this.idleMs = options.idleMs
    this.failed = new Promise(resolve => { this.onFailed = resolve })
    this.touch()
    stream.addEventListener('close', (evt) => {
      this.fail(evt.error ?? new GatewayStreamError('the stream closed'))
    })
    void this.readLoop()
  }

  /** body bytes this end may still receive before it grants more */
  private granted: number

  private touch (): void {
    clearTimeout(this.idle)
    if (this.finished || this.failure !== undefined) return
    this.idle = setTimeout(() => { this.abort(new GatewayStreamError(`nothing moved on the gateway stream for ${this.idleMs / 1000} s`)) }, this.idleMs)
    this.idle.unref()
  }

  private async readLoop (): Promise<void> {
    try {
      while (this.failure === undefined && !this.finished) {
        const frame = decodeFrame((await this.lp.read()).subarray())
        this.touch()
        switch (frame.kind) {
          case 'head':
            if (this.head !== undefined) throw new InvalidGatewayMessageError('a second head')
            this.head = frame.bytes
            break
          case 'data':
            if (this.head === undefined) throw new InvalidGatewayMessageError('body data before the head')
            if (this.ended) throw new InvalidGatewayMessageError('body data after the end')
            if (frame.bytes.length > this.granted) throw new InvalidGatewayMessageError(`the peer sent ${frame.bytes.length} body bytes with ${this.granted} granted`)
            this.granted -= frame.bytes.length
            this.counters.received += frame.bytes.length
            this.unread += frame.bytes.length
            this.counters.peakUnread = Math.max(this.counters.peakUnread, this.unread)
            this.chunks.push(frame.bytes)
            break
          case 'end':
            if (this.head === undefined) throw new InvalidGatewayMessageError('body end before the head')
            if (this.ended) throw new InvalidGatewayMessageError('a second body end')
            this.ended = true
            break
          case 'credit':
            if (this.credit + frame.bytes > WINDOW_BYTES) throw new InvalidGatewayMessageError(`the peer granted credit beyond the ${WINDOW_BYTES}-byte window`)
            this.credit += frame.bytes
            break
        }
        this.wake()
      }
    } catch (err) {
      if (this.finished) return
      if (this.ended && this.failure === undefined) {
        // the peer closed its end after its body: normal; it grants nothing more
        this.peerDone = true
        this.wake()
        return
      }
      this.abort(err instanceof InvalidGatewayMessageError
        ? new InvalidGatewayMessageError(`malformed gateway stream from the peer: ${err.message}`)
        : new GatewayStreamError(`the gateway stream ended early: ${(err as Error).message}`))
    }
  }

  private fail (err: Error): void {
    if (this.failure !== undefined || this.finished) return
    this.failure = err
    clearTimeout(this.idle)
    this.onFailed(err)
    for (const w of this.waiters.splice(0)) w.reject(err)
  }

  private wake (): void {
    for (const w of this.waiters.splice(0)) w.resolve()
  }

  /** Waits until `ready()` holds, checking after each frame; throws once the stream has failed. */
  async until (ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.failure !== undefined) throw this.failure
      await new Promise<void>((resolve, reject) => { this.waiters.push({ resolve, reject }) })
    }
  }

  get hasHead (): boolean {
    return this.head !== undefined
  }

  get hasCredit (): boolean {
    return this.credit > 0
  }

  /** The peer's head, once it has come. */
  async remoteHead (): Promise<Uint8Array> {
    await this.until(() => this.head !== undefined)
    return this.head!
  }

  /** The peer's body, chunk by chunk; taking the next chunk says the last one was handed on. */
  async * body (): AsyncGenerator<Uint8Array> {
    for (;;) {
      const chunk = this.chunks.shift()
      if (chunk !== undefined) {
        yield chunk
        this.handedOn(chunk.length)
        continue
      }
      if (this.ended) return
      await this.until(() => this.chunks.length > 0 || this.ended)
    }
  }

  /** Whether the peer's body has ended and every byte of it was taken. */
  get bodyDone (): boolean {
    return this.ended && this.chunks.length === 0
  }

  private handedOn (bytes: number): void {
    this.unread -= bytes
    this.consumed += bytes
    // credit in batches: one frame per half window, not one per chunk
    if (this.consumed >= WINDOW_BYTES / 2 && !this.ended) {
      this.granted += this.consumed
      this.send({ kind: 'credit', bytes: this.consumed })
      this.consumed = 0
    }
  }

  /** Lets the peer start sending its body (the request's reader, once it has somewhere to put it). */
  grantWindow (): void {
    const more = WINDOW_BYTES - this.granted
    if (more <= 0) return
    this.granted += more
    this.send({ kind: 'credit', bytes: more })
  }

  private send (frame: Parameters<typeof encodeFrame>[0]): void {
    if (this.failure !== undefined) throw this.failure
    // written without waiting for the muxer to drain: body frames go out only within the
    // peer's credit, so what the stream queues is bounded by the window all the same
    this.stream.send(lengthPrefixed(encodeFrame(frame)))
    this.touch()
  }

  sendHead (bytes: Uint8Array): void {
    this.send({ kind: 'head', bytes })
  }

  /** Sends body bytes as credit allows, waiting for the peer to grant more. */
  async sendData (bytes: Uint8Array): Promise<void> {
    let at = 0
    while (at < bytes.length) {
      await this.until(() => {
        if (this.peerDone && this.credit === 0) throw new GatewayStreamError('the peer closed its end of the gateway stream')
        return this.credit > 0
      })
      const n = Math.min(bytes.length - at, MAX_FRAME_BYTES, this.credit)
      this.credit -= n
      this.counters.sent += n
      this.send({ kind: 'data', bytes: bytes.subarray(at, at + n) })
      at += n
    }
  }

  sendEnd (): void {
    this.send({ kind: 'end' })
  }

  /** Both bodies are through: closes this end gracefully. */
  async close (): Promise<void> {
    this.finished = true
    clearTimeout(this.idle)
    await this.stream.close().catch(() => {})
  }

  abort (err: Error): void {
    this.fail(err)
    this.stream.abort(err)
  }

  get error (): Error | undefined {
    return this.failure
  }
}

function lengthPrefixed (bytes: Uint8Array): Uint8Array {
  let n = bytes.length
  const prefix: number[] = []
  while (n >= 0x80) { prefix.push((n & 0x7f) | 0x80); n >>>= 7 }
  prefix.push(n)
  const out = new Uint8Array(prefix.length + bytes.length)
  out.set(prefix)
  out.set(bytes, prefix.length)
  return out
}
