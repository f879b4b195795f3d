// Time as the engine sees it: a clock and one-shot timers. Daemons use the real ones; the
// deterministic simulator (consensus/sim) drives both from its own scheduler, so a schedule
// replays exactly from its seed.
export interface Timers {
  now: () => number
  /** Calls `fn` after `ms`; returns the cancel. */
  after: (ms: number, fn: () => void) => () => void
}

export function realTimers (clock: () => number = Date.now): Timers {
  return {
    now: clock,
    after (ms, fn) {
      const t = setTimeout(fn, Math.max(0, ms))
      return () => clearTimeout(t)
    }
  }
}
