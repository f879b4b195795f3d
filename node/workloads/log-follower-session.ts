// One follower of an instance's output, served on the node that runs the instance: the local
// follower (fs.watch, across rotations) reads the log files, and what it reads is pushed to the
// follower's stream as it comes.
//
// What a follower can cost this node is bounded, whatever it does:
// - text goes out only within the credit the follower granted (FOLLOW_WINDOW_BYTES) and only
//   while the stream drains, so no more than a window waits in the stream;
// - what is read and not yet sent waits in a queue of at most 256 KiB; while it is full the
//   files are not read further. Held back for 10 s straight (a follower that
//   reads nothing, or slower than the instance writes), the follower is cut off: its files are
//   closed at once and it is told why in one last frame;
// - a follower that answers nothing (not even a beat) for 20 s is cut off too, so
//   an idle stream that never reads holds no watch and no file for long.
// A follow that ends for a reason the node knows (the instance stopped, the node leaves) first
// reads what the files hold, passes it on for a short while, then says why.
import type { Stream } from '@libp2p/interface'
import type { lpStream } from '@libp2p/utils'
import { followLog } from '../../workloads/runner/follow-log.ts'
import type { LogStream } from '../../workloads/runner/rotating-log.ts'
import type { Logger } from '../log/index.ts'
import { decodeCreditFrame, encodeNodeFrame, textFrames, InvalidFollowFrameError, FOLLOW_WINDOW_BYTES, FOLLOW_BEAT_MS, FOLLOW_SILENCE_MS, type FollowEnd, type NodeFrame } from './log-follow-messages.ts'

/** What a follower may cost before it is cut off (tests make the times short). */
export interface FollowLimits {
  /** output read and not yet sent, at most */
  queueBytes: number
  /** how long the reading may be held back by a full queue */
  holdMs: number
  /** how long the follower may answer nothing */
  silenceMs: number
  /** how often a quiet stream carries a beat */
  beatMs: number
}

export const DEFAULT_FOLLOW_LIMITS: FollowLimits = { queueBytes: 256 * 1024, holdMs: 10_000, silenceMs: FOLLOW_SILENCE_MS, beatMs: FOLLOW_BEAT_MS }

/** how long the last output and the end frame may take to leave before the stream is cut */
const FAREWELL_MS = 5_000

export interface LogFollowerSessionOptions {
  stream: Stream
  lp: ReturnType<typeof lpStream>
  app: string
  logDir: string
  logStream: LogStream
  tailBytes: number
  log: Logger
  limits: FollowLimits
}

export class LogFollowerSession {
  readonly app: string
  private readonly o: LogFollowerSessionOptions
  /** stops reading the files at once (cut off, or the follower left) */
  private readonly follow = new AbortController()
  /** reads what the files hold, then stops (the instance stopped, the node leaves) */
  private readonly finish = new AbortController()
  /** the stream is done with: pending writes give up */
  private readonly gone = new AbortController()
  private readonly queue: string[] = []
  private queuedBytes = 0
  private credit = FOLLOW_WINDOW_BYTES
  private inFlightBytes = 0
  private writes: Promise<void> = Promise.resolve()
  private writing = 0
  private lastHeard = Date.now()
  private ending: { end: FollowEnd, why: string } | undefined
  private left = false
  private roomWaiters: Array<() => void> = []

  constructor (options: LogFollowerSessionOptions) {
    this.o = options
    this.app = options.app
  }

  /** Serves the follower until the follow ends, whichever way. */
  async run (): Promise<void> {
    const watchdog = setInterval(() => { this.watch() }, Math.min(1_000, this.o.limits.beatMs))
    try {
      // `following` once the file is open: the follower gets every byte written after it
      const started = async (): Promise<void> => {
        // a follower gone before it heard anything is not cut off, only left
        await this.write({ following: true }).catch((err: Error) => { this.leave(); throw err })
        void this.readCredit()
      }
      await followLog(this.o.logDir, this.o.logStream, async (text) => { await this.take(text) }, this.follow.signal, { tailBytes: this.o.tailBytes, until: this.finish.signal, started })
        .catch((err: Error) => { this.cut(`${this.app}: its log could not be read on the node that runs it: ${err.message}`) })
      if (this.left) return
      if (this.ending?.end !== 'cut') await this.flushed(FAREWELL_MS)
      this.queue.length = 0
      const ending = this.ending ?? { end: 'cut', why: 'the follow ended' }
      await this.farewell(ending)
    } catch (err) {
      this.o.log.debug({ app: this.app, err: (err as Error).message }, 'log follower lost')
      this.o.stream.abort(err as Error)
    } finally {
      clearInterval(watchdog)
      this.follow.abort()
      this.gone.abort()
      this.wakeRoom()
    }
  }

  /** Cut off, or the follower left: nothing more is read for it. */
  private over (): boolean {
    return this.ending?.end === 'cut' || this.left
  }

  /** The instance stopped or the node leaves: the rest of the output, then why. */
  end (end: 'stopped' | 'leaving', why: string): void {
    if (this.ending !== undefined) return
    this.ending = { end, why }
    this.finish.abort()
  }

  private cut (why: string): void {
    if (this.over()) return
    this.o.log.info({ app: this.app, why }, 'log follower cut off')
    this.ending = { end: 'cut', why }
    this.follow.abort()
    this.queue.length = 0
    this.queuedBytes = 0
    this.wakeRoom()
  }

  /** The follower closed or reset its stream: nobody to tell anything. */
  private leave (): void {
    if (this.left) return
    this.left = true
    this.follow.abort()
    this.finish.abort()
    this.gone.abort()
    this.queue.length = 0
    this.queuedBytes = 0
    this.wakeRoom()
    this.o.stream.abort(new Error('the follower left'))
  }

  /** New output from the files: queued, sent as credit allows; the reading waits while the queue is full. */
  private async take (text: string): Promise<void> {
    if (this.over()) return
    for (const piece of textFrames(text)) {
      this.queue.push(piece)
      this.queuedBytes += Buffer.byteLength(piece)
    }
    this.pump()
    const { queueBytes, holdMs } = this.o.limits
    const heldFrom = Date.now()
    while (this.queuedBytes >= queueBytes && !this.over()) {
      const left = holdMs - (Date.now() - heldFrom)
      if (left <= 0) {
        this.cut(`${this.app}: this follower was cut off for falling behind (${queueBytes / 1024} KiB of output waited ${holdMs / 1000} s for it to read)`)
        return
      }
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.roomWaiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** Moves queued text onto the stream within the follower's credit and a window in flight. */
  private pump (): void {
    while (this.queue.length > 0 && !this.left) {
      const bytes = Buffer.byteLength(this.queue[0])
      if (bytes > this.credit || this.inFlightBytes + bytes > FOLLOW_WINDOW_BYTES) return
      const text = this.queue.shift()!
      this.queuedBytes -= bytes
      this.credit -= bytes
      this.inFlightBytes += bytes
      this.write({ text }).then(() => {
        this.inFlightBytes -= bytes
        this.pump()
        this.wakeRoom()
      }, () => { this.leave() })
    }
    this.wakeRoom()
  }

  /** Frames leave one after another, each once the stream has room for it. */
  private async write (frame: NodeFrame): Promise<void> {
    this.writing++
    const sent = this.writes.then(async () => {
      if (this.gone.signal.aborted) throw new Error('the follow stream is closed')
      await this.o.lp.write(encodeNodeFrame(frame), { signal: this.gone.signal })
    })
    this.writes = sent.catch(() => {}).finally(() => { this.writing-- })
    await sent
  }

  private async readCredit (): Promise<void> {
    try {
      for (;;) {
        const { credit } = decodeCreditFrame((await this.o.lp.read()).subarray())
        this.lastHeard = Date.now()
        if (this.credit + credit > FOLLOW_WINDOW_BYTES) throw new InvalidFollowFrameError(`credit beyond the ${FOLLOW_WINDOW_BYTES}-byte window`)
        this.credit += credit
        this.pump()
      }
    } catch (err) {
      if (err instanceof InvalidFollowFrameError) this.cut(`${this.app}: this follower was cut off for breaking the follow protocol: ${err.message}`)
      else this.leave()
    }
  }

  private lastBeat = Date.now()

  private watch (): void {
    const now = Date.now()
    const { silenceMs, beatMs } = this.o.limits
    if (now - this.lastHeard > silenceMs) {
      this.cut(`${this.app}: this follower was cut off for answering nothing for ${silenceMs / 1000} s`)
      return
    }
    // a beat only when nothing waits to go: a stream that does not drain gets no more frames
    if (now - this.lastBeat >= beatMs && this.writing === 0 && this.ending === undefined) {
      this.lastBeat = now
      this.write({ beat: true }).catch(() => { this.leave() })
    }
  }

  private wakeRoom (): void {
    for (const wake of this.roomWaiters.splice(0)) wake()
  }

  /** Waits until the queue has gone out (or the time is up, or the follower left). */
  private async flushed (ms: number): Promise<void> {
    const until = Date.now() + ms
    while ((this.queue.length > 0 || this.inFlightBytes > 0) && !this.left && Date.now() < until) {
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(200, until - Date.now()))
        this.roomWaiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** The last frame, then a graceful close; a stream that takes neither in time is reset. */
  private async farewell (ending: { end: FollowEnd, why: string }): Promise<void> {
    const signal = AbortSignal.timeout(FAREWELL_MS)
    const giveUp = (): void => { this.gone.abort() }
    signal.addEventListener('abort', giveUp, { once: true })
    try {
      await this.write(ending)
      await this.o.stream.close({ signal })
    } catch (err) {
      this.o.stream.abort(err as Error)
    } finally {
      signal.removeEventListener('abort', giveUp)
    }
  }
}
