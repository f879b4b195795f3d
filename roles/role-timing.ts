// Timing of the role service. Defaults suit a real network; the multi-process harness
// shortens them through MYCELIUM_ROLE_TIMING (JSON), validated here like any other input.

export interface RoleTiming {
  /**
   * How often this node re-evaluates balance and checks whether its advertisement changed; a
   * change is published at that tick, an unchanged advertisement only at the refresh.
   */
  advertiseIntervalMs: number
  /**
   * An unchanged advertisement is re-published after a random ¾–1 of this (jitter, so the
   * network's refreshes do not bunch up). The refresh is what every node receives from every
   * other, N per period: long, so it does not dominate idle traffic; short enough that a dead
   * node nobody saw die still ages out (ttlMs). Receivers age entries by their own ttlMs, never
   * by what a sender claims, so a member cannot stretch its entry's life by refreshing slower.
   */
  refreshIntervalMs: number
  /** An advertisement not refreshed within this long is dropped: three refreshes, so two lost ones do not drop a live node. */
  ttlMs: number
  /** A peer that disconnected from us is dropped after this long without news. */
  suspectGraceMs: number
  /** No balancing until the view has had this long to fill after start. */
  settleMs: number
  /** A balancing action must still be advised after this long before it is taken. */
  confirmMs: number
  hysteresisMs: number
  hardwareIntervalMs: number
  powerPollIntervalMs: number
  networkIntervalMs: number
  firstNetworkMeasurementMs: number
}

/**
 * Defaults derived from the advertisement interval; each can be overridden. The refresh and
 * the ttl stay consistent: a given ttl sets the refresh to a third of it, a given refresh sets
 * the ttl to three of them, and neither given, the refresh is 12 ticks (60 s by default, ttl 3
 * min). A dead node's entry goes sooner than its ttl wherever a kept link to it broke: that
 * neighbour publishes a departure (roles/balance/role-departure.ts).
 */
export function roleTiming (overrides: Partial<RoleTiming> = {}): RoleTiming {
  const advertise = overrides.advertiseIntervalMs ?? 5_000
  const refresh = overrides.refreshIntervalMs ?? (overrides.ttlMs !== undefined ? Math.max(10, Math.floor(overrides.ttlMs / 3)) : 12 * advertise)
  return {
    advertiseIntervalMs: advertise,
    refreshIntervalMs: refresh,
    ttlMs: 3 * refresh,
    suspectGraceMs: 1_000,
    settleMs: 2 * advertise,
    // an advertisement of a live peer that merely disconnected from us arrives within one interval
    confirmMs: advertise + 1_000,
    hysteresisMs: 5 * 60_000,
    hardwareIntervalMs: 60_000,
    powerPollIntervalMs: 10_000,
    networkIntervalMs: 10 * 60_000,
    firstNetworkMeasurementMs: 2_000,
    ...overrides
  }
}

export const ROLE_TIMING_ENV = 'MYCELIUM_ROLE_TIMING'

export class RoleTimingError extends Error {
  readonly name = 'RoleTimingError'
}

const KEYS: Array<keyof RoleTiming> = ['advertiseIntervalMs', 'refreshIntervalMs', 'ttlMs', 'suspectGraceMs', 'settleMs', 'confirmMs', 'hysteresisMs', 'hardwareIntervalMs', 'powerPollIntervalMs', 'networkIntervalMs', 'firstNetworkMeasurementMs']

/** Validates partial timing overrides (milliseconds, 10 ms to one day each). */
export function parseRoleTiming (value: unknown): Partial<RoleTiming> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RoleTimingError('role timing must be a JSON object')
  const out: Partial<RoleTiming> = {}
  for (const [key, v] of Object.entries(value)) {
    if (!KEYS.includes(key as keyof RoleTiming)) throw new RoleTimingError(`unknown role timing "${key}" (known: ${KEYS.join(', ')})`)
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 10 || v > 86_400_000) throw new RoleTimingError(`${key} must be an integer number of milliseconds between 10 and 86400000`)
    out[key as keyof RoleTiming] = v
  }
  return out
}

export function roleTimingFromEnv (env: Record<string, string | undefined> = process.env): Partial<RoleTiming> {
  const text = env[ROLE_TIMING_ENV]
  if (text === undefined || text.trim() === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new RoleTimingError(`${ROLE_TIMING_ENV} is not valid JSON: ${(err as Error).message}`)
  }
  return parseRoleTiming(parsed)
}
