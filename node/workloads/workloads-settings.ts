// The workloads' settings, from the environment of `mycelium start` like the spores'
// (MYCELIUM_SPORES_…); a bad value stops the start with one line naming the variable.
// - How long this node keeps what no application needs any more: bundles nothing plans or
//   runs, and the directories (unpacked copies, logs) of instances that stopped. One setting for
//   both: a small device may want its disk back sooner, a test wants to see collection happen.
// - What followers of this node's logs (`app logs -f` from other nodes) may cost it: how many
//   at once, and how long one may fall behind before it is cut off. The credit window is part
//   of the protocol (both ends count it) and stays fixed.
export const APPS_GRACE_ENV = 'MYCELIUM_APPS_GRACE_MS'
export const DEFAULT_APPS_GRACE_MS = 60 * 60_000
export const LOG_FOLLOWERS_ENV = 'MYCELIUM_APPS_LOG_FOLLOWERS'
export const DEFAULT_LOG_FOLLOWERS = 16
export const LOG_FOLLOW_HOLD_ENV = 'MYCELIUM_APPS_LOG_FOLLOW_HOLD_MS'
export const DEFAULT_LOG_FOLLOW_HOLD_MS = 10_000
/** collection passes: every minute, or twice per grace period when that is shorter (at least every second) */
const COLLECT_MAX_MS = 60_000

export class WorkloadsSettingsError extends Error {
  readonly name = 'WorkloadsSettingsError'
}

export interface WorkloadsSettings {
  graceMs: number
  collectEveryMs: number
  /** log followers served at once */
  logFollowers: number
  /** how long a log follower may hold the reading back (a full queue) before it is cut off */
  logFollowHoldMs: number
}

function wholeNumber (env: NodeJS.ProcessEnv, name: string, fallback: number, least: number, most: number, unit: string): number {
  const text = env[name]
  if (text === undefined || text === '') return fallback
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < least || value > most) throw new WorkloadsSettingsError(`${name} must be a whole number of ${unit}, ${most === Number.MAX_SAFE_INTEGER ? `at least ${least}` : `from ${least} to ${most}`} (got "${text.slice(0, 40)}")`)
  return value
}

export function workloadsSettingsFromEnv (env: NodeJS.ProcessEnv = process.env): WorkloadsSettings {
  const graceMs = wholeNumber(env, APPS_GRACE_ENV, DEFAULT_APPS_GRACE_MS, 1000, Number.MAX_SAFE_INTEGER, 'milliseconds')
  return {
    graceMs,
    collectEveryMs: Math.max(1000, Math.min(COLLECT_MAX_MS, Math.floor(graceMs / 2))),
    logFollowers: wholeNumber(env, LOG_FOLLOWERS_ENV, DEFAULT_LOG_FOLLOWERS, 1, 1024, 'followers'),
    logFollowHoldMs: wholeNumber(env, LOG_FOLLOW_HOLD_ENV, DEFAULT_LOG_FOLLOW_HOLD_MS, 1000, 600_000, 'milliseconds')
  }
}
