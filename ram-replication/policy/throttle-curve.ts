// How much to slow the guest for a given replication backlog (bytes sent to no backup's
// acknowledgement yet). Below `startBytes` the guest runs free; the curve rises to
// `maxFraction` at `fullBytes`. 0 = full speed, 1 = stopped.

export type ThrottleCurve =
  | { kind: 'linear', startBytes: number, fullBytes: number, maxFraction?: number }
  /** Gentle first, steep near `fullBytes`: fraction ∝ (e^(k·x) − 1) / (e^k − 1) with x in [0, 1]. */
  | { kind: 'exponential', startBytes: number, fullBytes: number, maxFraction?: number, steepness?: number }
  /** Piecewise linear through [backlogBytes, fraction] points (sorted by backlog). */
  | { kind: 'points', points: Array<[number, number]> }
  | { kind: 'none' }

export class InvalidThrottleCurveError extends Error {
  readonly name = 'InvalidThrottleCurveError'
}

function clampFraction (value: number): number {
  return value < 0 ? 0 : value > 1 ? 1 : value
}

/** Check a curve once (it comes from configuration or the CLI). */
export function validateThrottleCurve (curve: ThrottleCurve): ThrottleCurve {
  if (curve.kind === 'none') return curve
  if (curve.kind === 'points') {
    if (curve.points.length === 0) throw new InvalidThrottleCurveError('a points curve needs at least one point')
    let previous = -Infinity
    for (const [backlog, fraction] of curve.points) {
      if (!Number.isFinite(backlog) || backlog < 0) throw new InvalidThrottleCurveError(`backlog ${backlog} is not a non-negative number`)
      if (backlog <= previous) throw new InvalidThrottleCurveError('points must be sorted by strictly increasing backlog')
      if (!(fraction >= 0 && fraction <= 1)) throw new InvalidThrottleCurveError(`fraction ${fraction} is outside [0, 1]`)
      previous = backlog
    }
    return curve
  }
  if (!(curve.startBytes >= 0) || !(curve.fullBytes > curve.startBytes)) throw new InvalidThrottleCurveError('need 0 <= startBytes < fullBytes')
  const max = curve.maxFraction ?? 0.95
  if (!(max >= 0 && max <= 1)) throw new InvalidThrottleCurveError(`maxFraction ${max} is outside [0, 1]`)
  if (curve.kind === 'exponential' && curve.steepness != null && !(curve.steepness > 0)) throw new InvalidThrottleCurveError('steepness must be positive')
  return curve
}

/** The guest slowdown for `backlogBytes` under `curve`. */
export function throttleFor (curve: ThrottleCurve, backlogBytes: number): number {
  switch (curve.kind) {
    case 'none':
      return 0
    case 'points': {
      const { points } = curve
      if (backlogBytes <= points[0][0]) return clampFraction(points[0][1])
      for (let i = 1; i < points.length; i++) {
        const [x1, y1] = points[i]
        if (backlogBytes <= x1) {
          const [x0, y0] = points[i - 1]
          return clampFraction(y0 + (y1 - y0) * (backlogBytes - x0) / (x1 - x0))
        }
      }
      return clampFraction(points[points.length - 1][1])
    }
    case 'linear':
    case 'exponential': {
      const max = curve.maxFraction ?? 0.95
      if (backlogBytes <= curve.startBytes) return 0
      if (backlogBytes >= curve.fullBytes) return max
      const x = (backlogBytes - curve.startBytes) / (curve.fullBytes - curve.startBytes)
      if (curve.kind === 'linear') return max * x
      const k = curve.steepness ?? 4
      return max * Math.expm1(k * x) / Math.expm1(k)
    }
  }
}

/** The named curves of `--throttle linear|exponential`, scaled to a backlog limit. */
export function namedThrottleCurve (name: 'linear' | 'exponential' | 'none', limitBytes: number): ThrottleCurve {
  if (name === 'none') return { kind: 'none' }
  return { kind: name, startBytes: limitBytes * 0.25, fullBytes: limitBytes, maxFraction: 0.95 }
}
