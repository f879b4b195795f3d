// Virtual time for the scale model: the BFT simulator's scheduler idea (events in (time,
// insertion) order, promises settled between steps, a crashed node's timers dropped together)
// on a binary heap, since tens of thousands of nodes keep millions of events pending where the
// BFT simulator's sorted array holds a few hundred. Promises settle once per distinct
// millisecond rather than after every event: events of one millisecond run back to back, in
// insertion order, so a seed still replays exactly.
import type { RoleTimer, RoleTimers } from '../../../roles/index.ts'

interface Event {
  at: number
  seq: number
  fn: () => void
  owner: Owner | undefined
  cancelled: boolean
}

/** A node's incarnation: when it dies, every timer it set is dropped. */
export interface Owner { alive: boolean }

const settle = async (): Promise<void> => { await new Promise<void>(resolve => setImmediate(resolve)) }

export class VirtualClock {
  private time: number
  private seq = 0
  private readonly heap: Event[] = []
  /** Events run so far. */
  steps = 0

  constructor (start: number) {
    this.time = start
  }

  now (): number {
    return this.time
  }

  get pending (): number {
    return this.heap.length
  }

  at (at: number, fn: () => void, owner?: Owner): { cancel: () => void } {
    const e: Event = { at: Math.max(at, this.time), seq: this.seq++, fn, owner, cancelled: false }
    this.push(e)
    return { cancel: () => { e.cancelled = true } }
  }

  after (ms: number, fn: () => void, owner?: Owner): { cancel: () => void } {
    return this.at(this.time + Math.max(0, ms), fn, owner)
  }

  /** setTimeout / setInterval for one node's role service, on this clock. */
  timersFor (owner: Owner): RoleTimers {
    interface Handle extends RoleTimer { cancel: () => void }
    return {
      setTimeout: (fn, ms) => ({ ...this.after(ms, fn, owner), unref () {} }),
      setInterval: (fn, ms) => {
        let current = { cancel: () => {} }
        let stopped = false
        const tick = (): void => {
          if (stopped) return
          current = this.after(Math.max(1, ms), tick, owner)
          fn()
        }
        current = this.after(Math.max(1, ms), tick, owner)
        return { cancel: () => { stopped = true; current.cancel() }, unref () {} } satisfies Handle
      },
      clear: (timer) => { (timer as Handle | undefined)?.cancel() }
    }
  }

  /** Runs events until virtual time `until`; `tick` runs once per distinct millisecond and may stop the run (true). */
  async runUntil (until: number, tick?: (now: number) => boolean): Promise<void> {
    await settle()
    while (this.heap.length > 0 && this.heap[0].at <= until) {
      const at = this.heap[0].at
      this.time = at
      while (this.heap.length > 0 && this.heap[0].at === at) {
        const e = this.pop()
        if (e.cancelled || (e.owner !== undefined && !e.owner.alive)) continue
        this.steps++
        e.fn()
      }
      await settle()
      if (tick?.(at) === true) return
    }
    if (this.time < until) this.time = until
  }

  private less (a: Event, b: Event): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  private push (e: Event): void {
    const h = this.heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.less(h[i], h[p])) break
      [h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }

  private pop (): Event {
    const h = this.heap
    const top = h[0]
    const last = h.pop() as Event
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.less(h[l], h[m])) m = l
        if (r < h.length && this.less(h[r], h[m])) m = r
        if (m === i) break
        [h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    return top
  }
}
