import { describe, expect, it } from 'vitest'
import {
  throttleFor, validateThrottleCurve, namedThrottleCurve, InvalidThrottleCurveError,
  decideGuest, decideBackup, validateEmergencyLimits, InvalidEmergencyLimitsError,
  profileForRtt, AutoConverge, DEFAULT_AUTO_CONVERGE, validateAutoConverge, InvalidAutoConvergeError
} from '../../ram-replication/index.ts'

const MiB = 1024 * 1024

describe('throttle curves', () => {
  it('leave the guest at full speed below the start of a linear curve and rise in proportion above it', () => {
    const curve = validateThrottleCurve({ kind: 'linear', startBytes: 10 * MiB, fullBytes: 110 * MiB, maxFraction: 0.9 })
    expect(throttleFor(curve, 0)).toBe(0)
    expect(throttleFor(curve, 10 * MiB)).toBe(0)
    expect(throttleFor(curve, 60 * MiB)).toBeCloseTo(0.45, 10)
    expect(throttleFor(curve, 110 * MiB)).toBeCloseTo(0.9, 10)
    expect(throttleFor(curve, 1000 * MiB)).toBeCloseTo(0.9, 10)
  })

  it('make an exponential curve gentle at first and steep near the limit', () => {
    const curve = validateThrottleCurve({ kind: 'exponential', startBytes: 0, fullBytes: 100 * MiB, maxFraction: 1, steepness: 4 })
    const quarter = throttleFor(curve, 25 * MiB)
    const half = throttleFor(curve, 50 * MiB)
    const threeQuarters = throttleFor(curve, 75 * MiB)
    expect(quarter).toBeLessThan(0.25)
    expect(half).toBeLessThan(0.5)
    expect(threeQuarters - half).toBeGreaterThan(half - quarter)
    expect(throttleFor(curve, 100 * MiB)).toBeCloseTo(1, 10)
  })

  it('interpolate between custom points and hold the ends', () => {
    const curve = validateThrottleCurve({ kind: 'points', points: [[4 * MiB, 0], [8 * MiB, 0.2], [16 * MiB, 0.8]] })
    expect(throttleFor(curve, 1 * MiB)).toBe(0)
    expect(throttleFor(curve, 6 * MiB)).toBeCloseTo(0.1, 10)
    expect(throttleFor(curve, 12 * MiB)).toBeCloseTo(0.5, 10)
    expect(throttleFor(curve, 64 * MiB)).toBeCloseTo(0.8, 10)
  })

  it('never decrease as the backlog grows', () => {
    for (const curve of [namedThrottleCurve('linear', 64 * MiB), namedThrottleCurve('exponential', 64 * MiB)]) {
      let previous = 0
      for (let backlog = 0; backlog <= 80 * MiB; backlog += MiB / 2) {
        const value = throttleFor(curve, backlog)
        expect(value).toBeGreaterThanOrEqual(previous)
        expect(value).toBeLessThanOrEqual(1)
        previous = value
      }
    }
    expect(throttleFor(namedThrottleCurve('none', 64 * MiB), 1e12)).toBe(0)
  })

  it('refuse curves that make no sense', () => {
    expect(() => validateThrottleCurve({ kind: 'linear', startBytes: 10, fullBytes: 5 })).toThrow(InvalidThrottleCurveError)
    expect(() => validateThrottleCurve({ kind: 'points', points: [] })).toThrow(InvalidThrottleCurveError)
    expect(() => validateThrottleCurve({ kind: 'points', points: [[5, 0.1], [2, 0.2]] })).toThrow(InvalidThrottleCurveError)
    expect(() => validateThrottleCurve({ kind: 'points', points: [[5, 1.5]] })).toThrow(InvalidThrottleCurveError)
    expect(() => validateThrottleCurve({ kind: 'exponential', startBytes: 0, fullBytes: 5, steepness: 0 })).toThrow(InvalidThrottleCurveError)
  })
})

describe('emergency modes', () => {
  const limits = validateEmergencyLimits({ limitBytes: 100 * MiB, resumeBytes: 20 * MiB })

  it('pause mode stops the guest at the limit and resumes it only once the backlog drained below the resume mark', () => {
    expect(decideGuest('pause', limits, 99 * MiB, false)).toBe('run')
    expect(decideGuest('pause', limits, 100 * MiB, false)).toBe('pause')
    expect(decideGuest('pause', limits, 50 * MiB, true)).toBe('stay-paused')
    expect(decideGuest('pause', limits, 20 * MiB, true)).toBe('resume')
  })

  it('best-effort mode never holds the guest and drops only the backup past the limit to a resync', () => {
    expect(decideGuest('best-effort', limits, 10_000 * MiB, false)).toBe('run')
    expect(decideGuest('best-effort', limits, 0, true)).toBe('resume')
    expect(decideBackup('best-effort', limits, 99 * MiB)).toBe('send')
    expect(decideBackup('best-effort', limits, 100 * MiB)).toBe('drop-to-resync')
    expect(decideBackup('pause', limits, 10_000 * MiB)).toBe('send')
  })

  it('refuse limits without hysteresis', () => {
    expect(() => validateEmergencyLimits({ limitBytes: 10, resumeBytes: 10 })).toThrow(InvalidEmergencyLimitsError)
    expect(() => validateEmergencyLimits({ limitBytes: 0, resumeBytes: 0 })).toThrow(InvalidEmergencyLimitsError)
  })
})

describe('network profiles', () => {
  it('choose short epochs and a window covering the bandwidth-delay product on a LAN', () => {
    const lan = profileForRtt(0.4)
    expect(lan.name).toBe('lan')
    expect(lan.epochIntervalMs).toBe(10)
    expect(lan.windowBytes).toBeGreaterThanOrEqual(2 * 125_000_000 * 0.4 / 1000)
  })

  it('choose longer epochs, a larger window and a longer primary timeout on a WAN', () => {
    const lan = profileForRtt(1)
    const wan = profileForRtt(80, 12_500_000)
    expect(wan.name).toBe('wan')
    expect(wan.epochIntervalMs).toBeGreaterThan(lan.epochIntervalMs)
    expect(wan.windowBytes).toBeGreaterThanOrEqual(2 * 12_500_000 * 0.08)
    expect(wan.primaryTimeoutMs).toBeGreaterThan(lan.primaryTimeoutMs)
  })
})

describe('auto-converge (migration throttling)', () => {
  it('raises the throttle after two rounds in a row that carry more than half the previous one: 20 %, then by 10 %, up to 99 %', () => {
    const auto = new AutoConverge(DEFAULT_AUTO_CONVERGE, 0)
    const seen: Array<number | undefined> = []
    // A guest that dirties as fast as the link delivers: every round is as big as the last.
    for (let round = 0; round < 24; round++) seen.push(auto.observe(1000, 1000))
    expect(seen.slice(0, 4)).toEqual([undefined, 0.2, undefined, 0.3])
    expect(seen.filter(value => value != null)).toEqual([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99])
    expect(auto.atMax).toBe(true)
  })

  it('leaves the guest alone while rounds shrink, and counts only non-shrinking rounds in a row', () => {
    const auto = new AutoConverge(DEFAULT_AUTO_CONVERGE, 0)
    expect(auto.observe(400, 1000)).toBeUndefined()
    expect(auto.observe(900, 1000)).toBeUndefined()
    expect(auto.observe(100, 1000)).toBeUndefined()
    expect(auto.observe(900, 1000)).toBeUndefined()
    expect(auto.observe(900, 1000)).toBe(0.2)
  })

  it('starts from the replication policy\'s throttle when that is higher than the initial step', () => {
    const auto = new AutoConverge(validateAutoConverge({ rounds: 1 }), 0.5)
    expect(auto.observe(1000, 1000)).toBe(0.5)
    expect(auto.observe(1000, 1000)).toBe(0.6)
  })

  it('refuses settings outside their ranges', () => {
    expect(() => validateAutoConverge({ max: 1 })).toThrow(InvalidAutoConvergeError)
    expect(() => validateAutoConverge({ rounds: 0 })).toThrow(InvalidAutoConvergeError)
    expect(() => validateAutoConverge({ initial: 0.5, max: 0.4 })).toThrow(InvalidAutoConvergeError)
  })
})
