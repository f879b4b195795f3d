// How long the VMM keeps the vCPU out of the guest after a progress report. Two reasons to wait:
// the configured write rate (pages/s) and the throttle fraction the replication policy sets.
// Waiting happens with the vCPU stopped, so a slowed guest costs the host no CPU, and a pause
// requested during a wait takes effect at once.

/** Slack the schedule may fall behind before it stops trying to catch up (bounds bursts). */
const CATCH_UP_MS = 5

export class GuestPacer {
  private rate: number
  private throttle = 0
  private nextStartAt = 0

  constructor (rate: number) {
    this.rate = rate
  }

  get dirtyRate (): number {
    return this.rate
  }

  get throttleFraction (): number {
    return this.throttle
  }

  setRate (pagesPerSecond: number): void {
    this.rate = Math.max(0, pagesPerSecond)
  }

  /** 0 = full speed, ≥ 1 = stopped (the caller does not run the vCPU at all then). */
  setThrottle (fraction: number): void {
    this.throttle = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0
  }

  /** Forget the schedule (after a pause: the guest does not make up for time it was stopped). */
  restart (now: number): void {
    this.nextStartAt = now
  }

  /**
   * Account for one run slice that started at `startedAt`, lasted `sliceMs` and wrote `pages`.
   * The next slice may start no earlier than `startAt()`.
   */
  record (startedAt: number, sliceMs: number, pages: number): void {
    const share = 1 - this.throttle
    // Fully throttled: the caller stops the vCPU; the schedule resumes when the throttle drops.
    if (share <= 0) return
    let period = sliceMs / share
    if (this.rate > 0 && pages > 0) period = Math.max(period, (pages * 1000) / (this.rate * share))
    const base = Math.max(this.nextStartAt, startedAt - CATCH_UP_MS)
    this.nextStartAt = base + period
  }

  startAt (): number {
    return this.nextStartAt
  }
}
