// How long this node keeps what no application needs any more: bundles nothing plans or runs,
// and the directories (unpacked copies, logs) of instances that stopped. One setting for both,
// from the environment of `mycelium start` like the spores' (MYCELIUM_SPORES_…): a small device
// may want its disk back sooner, a test wants to see collection happen. A bad value stops the
// start with one line naming the variable.
export const APPS_GRACE_ENV = 'MYCELIUM_APPS_GRACE_MS'
export const DEFAULT_APPS_GRACE_MS = 60 * 60_000
/** collection passes: every minute, or twice per grace period when that is shorter (at least every second) */
const COLLECT_MAX_MS = 60_000

export class WorkloadsSettingsError extends Error {
  readonly name = 'WorkloadsSettingsError'
}

export interface WorkloadsSettings {
  graceMs: number
  collectEveryMs: number
}

export function workloadsSettingsFromEnv (env: NodeJS.ProcessEnv = process.env): WorkloadsSettings {
  const text = env[APPS_GRACE_ENV]
  let graceMs = DEFAULT_APPS_GRACE_MS
  if (text !== undefined && text !== '') {
    graceMs = Number(text)
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(graceMs) || graceMs < 1000) throw new WorkloadsSettingsError(`${APPS_GRACE_ENV} must be a whole number of milliseconds, at least 1000 (got "${text.slice(0, 40)}")`)
  }
  return { graceMs, collectEveryMs: Math.max(1000, Math.min(COLLECT_MAX_MS, Math.floor(graceMs / 2))) }
}
