// Virtual time for the simulator. Events run in (time, insertion) order; between two events
// every promise the last one started settles (a macrotask turn), so the engine's async steps
// interleave the same way on every run. Each node gets Timers bound to its own group, so a
// crash cancels exactly that node's pending timers.
import type { Timers } from '../timers.ts'

interface Event {
  at: number
  seq: number
  group: number
  fn: () => void
  cancelled: boolean
}

const settle = async (): Promise<void> => { await new Promise<void>(resolve => setImmediate(resolve)) }

export class Scheduler {
  private time = 0
  private seq = 0
  private readonly queue: Event[] = []
  private readonly cancelledGroups = new Set<number>()
  /** Events run so far (a bound on a schedule's work). */
  steps = 0

  now (): number {
    return this.time
  }

  at (at: number, fn: () => void, group = -1): () => void {
    const e: Event = { at: Math.max(at, this.time), seq: this.seq++, group, fn, cancelled: false }
    // Binary insertion keeps the queue sorted by (at, seq).
    let lo = 0
    let hi = this.queue.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const m = this.queue[mid]
      if (m.at < e.at || (m.at === e.at && m.seq < e.seq)) lo = mid + 1
      else hi = mid
    }
    this.queue.splice(lo, 0, e)
    return () => { e.cancelled = true }
  }

  after (ms: number, fn: () => void, group = -1): () => void {
    return this.at(this.time + Math.max(0, ms), fn, group)
  }

  /** Timers for one node: cancelled together by cancelGroup(group). */
  timersFor (group: number): Timers {
    return { now: () => this.time, after: (ms, fn) => this.after(ms, fn, group) }
  }

  /** Drops every pending event of a group (a crashed node's timers). */
  cancelGroup (group: number): void {
    for (const e of this.queue) if (e.group === group) e.cancelled = true
  }

  /** Runs events until virtual time `until` (or `maxSteps`); `after` runs after each event. */
  async runUntil (until: number, maxSteps: number, afterStep?: () => void): Promise<void> {
    await settle()
    while (this.queue.length > 0 && this.queue[0].at <= until && this.steps < maxSteps) {
      const e = this.queue.shift() as Event
      if (e.cancelled) continue
      this.time = e.at
      this.steps++
      e.fn()
      await settle()
      afterStep?.()
    }
    if (this.time < until) this.time = until
  }
}
