// The following end of app-log-follow/1.0.0, in the daemon of the node where `mycelium app logs
// NAME -f` runs: one stream to the node that runs the instance, over which that node pushes the
// output as it is written. This end grants credit as its consumer takes the text (so it holds at
// most a window of it), answers the node's beats, and takes the node for gone when the stream
// breaks or nothing comes for FOLLOW_SILENCE_MS (a node killed or cut off mid-follow): the
// consumer then gets one LogFollowLostError, never a hang.
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeCanonical } from '../../crypto/index.ts'
import type { MyceliumHost } from '../host/index.ts'
import type { LogRequest } from './log-exchange.ts'
import { decodeNodeFrame, encodeCreditFrame, InvalidFollowFrameError, FOLLOW_WINDOW_BYTES, FOLLOW_SILENCE_MS, MAX_FOLLOW_FRAME_BYTES, type FollowEnd } from './log-follow-messages.ts'

const OPEN_MS = 10_000
const WATCH_MS = 1_000

/** The node would not serve the follow (no grant, too many followers, a malformed request). */
export class LogFollowRefusedError extends Error {
  readonly name = 'LogFollowRefusedError'
}

/** The node went away mid-follow, or broke the protocol. */
export class LogFollowLostError extends Error {
  readonly name = 'LogFollowLostError'
}

export type FollowEvent = { text: string } | { end: FollowEnd, why: string }

function short (peer: string): string {
  return `…${peer.slice(-8)}`
}

/**
 * Opens a follow of `request.app` on `peer`. Undefined when that node holds no log of it;
 * LogFollowRefusedError when it will not serve it.
 */
export async function openRemoteLogFollow (options: { host: MyceliumHost, protocol: string, peer: string, request: LogRequest, signal: AbortSignal, silenceMs?: number }): Promise<RemoteLogFollow | undefined> {
  const { host, protocol, peer, request } = options
  const signal = AbortSignal.any([options.signal, AbortSignal.timeout(OPEN_MS)])
  const stream = await host.dialProtocol(peerIdFromString(peer), protocol, { signal })
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_FOLLOW_FRAME_BYTES })
    await lp.write(encodeCanonical(request), { signal })
    const first = decodeNodeFrame((await lp.read({ signal })).subarray())
    if ('following' in first) return new RemoteLogFollow(stream, lp, peer, options.signal, options.silenceMs ?? FOLLOW_SILENCE_MS)
    await stream.close({ signal }).catch(() => {})
    if ('missing' in first) return undefined
    if ('refused' in first) throw new LogFollowRefusedError(`${short(peer)} refused to be followed: ${first.refused}`)
    if ('error' in first) throw new LogFollowRefusedError(`${short(peer)} did not take the follow request: ${first.error}`)
    throw new InvalidFollowFrameError('the follow did not begin with its answer')
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

export class RemoteLogFollow {
  readonly peer: string
  private readonly stream: Stream
  private readonly lp: ReturnType<typeof lpStream>
  private readonly signal: AbortSignal
  private readonly events: FollowEvent[] = []
  /** text bytes the node may still send */
  private granted = FOLLOW_WINDOW_BYTES
  /** text bytes handed on and not yet granted again */
  private consumed = 0
  private lastHeard = Date.now()
  private ended = false
  private failure: Error | undefined
  private wake: (() => void) | undefined
  private readonly watchdog: NodeJS.Timeout

  constructor (stream: Stream, lp: ReturnType<typeof lpStream>, peer: string, signal: AbortSignal, silenceMs: number) {
    this.stream = stream
    this.lp = lp
    this.peer = peer
    this.signal = signal
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastHeard > silenceMs) this.fail(new LogFollowLostError(`the node ${short(peer)} running it sent nothing for ${silenceMs / 1000} s (it is down or cut off)`))
    }, Math.min(WATCH_MS, silenceMs / 2))
    this.watchdog.unref()
    signal.addEventListener('abort', this.onAbort, { once: true })
    void this.readLoop()
  }

  private readonly onAbort = (): void => { this.notify() }

  private async readLoop (): Promise<void> {
    try {
      while (!this.ended) {
        const frame = decodeNodeFrame((await this.lp.read()).subarray())
        this.lastHeard = Date.now()
        if ('text' in frame) {
          const bytes = Buffer.byteLength(frame.text)
          if (bytes > this.granted) throw new InvalidFollowFrameError(`${bytes} bytes of text with ${this.granted} granted`)
          this.granted -= bytes
          this.events.push({ text: frame.text })
        } else if ('beat' in frame) {
          await this.lp.write(encodeCreditFrame({ credit: 0 }))
        } else if ('end' in frame) {
          this.ended = true
          this.events.push({ end: frame.end, why: frame.why })
        } else {
          throw new InvalidFollowFrameError('a second answer in the middle of the follow')
        }
        this.notify()
      }
    } catch (err) {
      this.fail(err instanceof InvalidFollowFrameError
        ? new LogFollowLostError(`the node ${short(this.peer)} broke the follow protocol: ${err.message}`)
        : new LogFollowLostError(`the connection to the node ${short(this.peer)} running it was lost (${(err as Error).message})`))
    }
  }

  private fail (err: Error): void {
    if (this.failure !== undefined || this.ended) return
    this.failure = err
    this.stream.abort(err)
    this.notify()
  }

  private notify (): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  /** Grants again what was handed on, half a window at a time. */
  private handedOn (bytes: number): void {
    this.consumed += bytes
    if (this.consumed < FOLLOW_WINDOW_BYTES / 2 || this.ended || this.failure !== undefined) return
    const credit = this.consumed
    this.consumed = 0
    this.granted += credit
    this.lp.write(encodeCreditFrame({ credit })).catch((err: Error) => { this.fail(new LogFollowLostError(`the connection to the node ${short(this.peer)} running it was lost (${err.message})`)) })
  }

  /**
   * The output as it comes, then the node's end; throws LogFollowLostError when the node is
   * gone. Taking the next event says the last text was handed on. Leaving the loop (or the
   * signal) closes the stream, and the node stops reading the files for it.
   */
  async * follow (): AsyncGenerator<FollowEvent> {
    try {
      for (;;) {
        const event = this.events.shift()
        if (event !== undefined) {
          yield event
          if ('end' in event) return
          this.handedOn(Buffer.byteLength(event.text))
          continue
        }
        if (this.signal.aborted) return
        if (this.failure !== undefined) throw this.failure
        await new Promise<void>(resolve => { this.wake = resolve })
      }
    } finally {
      clearInterval(this.watchdog)
      this.signal.removeEventListener('abort', this.onAbort)
      if (this.ended) await this.stream.close({ signal: AbortSignal.timeout(OPEN_MS) }).catch(() => {})
      else this.stream.abort(new Error('the follower left'))
    }
  }
}
