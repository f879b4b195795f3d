// A rate over a sliding window: amounts recorded with their time, summed over the last window.

export class RateMeter {
  private readonly windowMs: number
  private readonly startedAt: number
  private readonly events: Array<{ at: number, amount: number }> = []
  private inWindow = 0
  total = 0

  constructor (windowMs = 2000, now = Date.now()) {
    this.windowMs = windowMs
    this.startedAt = now
  }

  add (amount: number, now = Date.now()): void {
    this.total += amount
    this.inWindow += amount
    this.events.push({ at: now, amount })
    this.trim(now)
  }

  /** Units per second over the window (or since the meter started, if that is shorter). */
  perSecond (now = Date.now()): number {
    this.trim(now)
    const span = Math.min(this.windowMs, Math.max(1, now - this.startedAt))
    return this.inWindow * 1000 / span
  }

  private trim (now: number): void {
    let drop = 0
    while (drop < this.events.length && now - this.events[drop].at > this.windowMs) {
      this.inWindow -= this.events[drop].amount
      drop++
    }
    if (drop > 0) this.events.splice(0, drop)
  }
}
