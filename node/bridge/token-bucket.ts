// A token bucket: at most `ratePerS` messages per second on average, bursts of up to one
// second's worth. A flood through a bridge is cut to that rate instead of queued.
export class TokenBucket {
  private readonly ratePerS: number
  private readonly capacity: number
  private tokens: number
  private last: number
  private readonly now: () => number

  constructor (ratePerS: number, now: () => number = () => performance.now()) {
    this.ratePerS = ratePerS
    this.capacity = Math.max(1, ratePerS)
    this.tokens = this.capacity
    this.now = now
    this.last = now()
  }

  take (): boolean {
    const t = this.now()
    this.tokens = Math.min(this.capacity, this.tokens + (t - this.last) / 1000 * this.ratePerS)
    this.last = t
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

export class InvalidRateError extends Error {
  readonly name = 'InvalidRateError'
}

/** "100/s", "30/m", "1000/h" → messages per second. */
export function parseRate (text: string): number {
  const m = /^(\d+(?:\.\d+)?)\/(s|m|h)$/.exec(text.trim())
  if (m === null) throw new InvalidRateError(`"${text}" is not a rate (use e.g. 100/s, 30/m)`)
  const perS = Number(m[1]) / { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h']
  if (!(perS > 0) || perS > 100_000) throw new InvalidRateError(`"${text}" is out of range (more than 0, at most 100000/s)`)
  return perS
}
