// When a migration's converge rounds stop shrinking, slow the guest until they do (QEMU's
// auto-converge, with its defaults). A round transfers what the guest dirtied while the previous
// round was on the wire, so comparing the two is comparing the guest's dirty rate with the link's
// throughput: if a round carries more than `triggerShare` of what the previous one carried, the
// guest dirties faster than half the link delivers, and the rounds will not get small on their
// own. After `rounds` such rounds in a row the throttle rises: to `initial` the first time, then
// by `step`, up to `max` (not 1: a stopped guest is the stop-and-copy's job, not throttling's).

export interface AutoConvergeSettings {
  /** Raise the throttle after this many non-shrinking rounds in a row (QEMU: 2 checks). */
  rounds: number
  /** A round is non-shrinking above this share of the previous round's bytes (QEMU's throttle-trigger-threshold, 50 %). */
  triggerShare: number
  /** First throttle (QEMU's cpu-throttle-initial, 20 %). */
  initial: number
  /** Raise by this much afterwards (QEMU's cpu-throttle-increment, 10 %). */
  step: number
  /** Highest throttle (QEMU's max-cpu-throttle, 99 %). */
  max: number
}

export const DEFAULT_AUTO_CONVERGE: AutoConvergeSettings = { rounds: 2, triggerShare: 0.5, initial: 0.2, step: 0.1, max: 0.99 }

export class InvalidAutoConvergeError extends Error {
  readonly name = 'InvalidAutoConvergeError'
}

export function validateAutoConverge (settings: Partial<AutoConvergeSettings>): AutoConvergeSettings {
  const merged = { ...DEFAULT_AUTO_CONVERGE, ...settings }
  if (!Number.isInteger(merged.rounds) || merged.rounds < 1) throw new InvalidAutoConvergeError(`rounds must be a positive integer, got ${merged.rounds}`)
  for (const name of ['triggerShare', 'initial', 'step', 'max'] as const) {
    if (!(merged[name] > 0 && merged[name] < 1)) throw new InvalidAutoConvergeError(`${name} must be in (0, 1), got ${merged[name]}`)
  }
  if (merged.initial > merged.max) throw new InvalidAutoConvergeError('initial must not exceed max')
  return merged
}

export class AutoConverge {
  private readonly settings: AutoConvergeSettings
  private misses = 0
  private raised = false
  throttle: number

  /** `throttle`: what the guest runs at when the migration starts (the replication policy's). */
  constructor (settings: AutoConvergeSettings, throttle: number) {
    this.settings = settings
    this.throttle = throttle
  }

  /** Whether the throttle can rise any more. */
  get atMax (): boolean {
    return this.throttle >= this.settings.max
  }

  /**
   * After a round that carried `bytes`, the previous one having carried `previousBytes`:
   * the new throttle when it must rise, else undefined.
   */
  observe (bytes: number, previousBytes: number): number | undefined {
    if (bytes <= this.settings.triggerShare * previousBytes) {
      this.misses = 0
      return undefined
    }
    if (++this.misses < this.settings.rounds || this.atMax) return undefined
    this.misses = 0
    const next = this.raised ? this.throttle + this.settings.step : Math.max(this.throttle, this.settings.initial)
    this.raised = true
    // Rounding keeps 0.2 + 8 × 0.1 from landing a hair above 0.99.
    this.throttle = Math.min(this.settings.max, Math.round(next * 1000) / 1000)
    return this.throttle
  }
}
