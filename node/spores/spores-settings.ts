// How often a node publishes its own entries and reconciles with a peer, and the spores'
// limits. Defaults suit a production network; the environment can tighten them (tests, small
// devices): MYCELIUM_SPORES_PUBLISH_MS (how often the own summary is read), MYCELIUM_SPORES_REFRESH_MS
// (how often an unchanged own entry is re-published), MYCELIUM_SPORES_SYNC_MS, MYCELIUM_SPORES_WINDOW_MS,
// MYCELIUM_SPORES_MAX_ENTRIES="service=50,connection=500".
import { isEntryType, type EntryType } from '../../spores/index.ts'

export interface SporesSettings {
  publishIntervalMs: number
  refreshIntervalMs?: number
  syncIntervalMs: number
  windowMs?: number
  maxEntries: Partial<Record<EntryType, number>>
}

export class SporesSettingsError extends Error {
  readonly name = 'SporesSettingsError'
}

function positive (env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name]
  if (text === undefined || text === '') return undefined
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n <= 0) throw new SporesSettingsError(`${name} must be a positive whole number of milliseconds (got "${text}")`)
  return n
}

function maxEntries (text: string | undefined): Partial<Record<EntryType, number>> {
  const out: Partial<Record<EntryType, number>> = {}
  if (text === undefined || text === '') return out
  for (const part of text.split(',')) {
    const [type, value] = part.split('=')
    const n = Number(value)
    if (!isEntryType(type) || !Number.isSafeInteger(n) || n <= 0) throw new SporesSettingsError(`MYCELIUM_SPORES_MAX_ENTRIES: "${part}" is not <type>=<positive count>`)
    out[type] = n
  }
  return out
}

export function sporesSettingsFromEnv (env: NodeJS.ProcessEnv = process.env): SporesSettings {
  return {
    publishIntervalMs: positive(env, 'MYCELIUM_SPORES_PUBLISH_MS') ?? 60_000,
    refreshIntervalMs: positive(env, 'MYCELIUM_SPORES_REFRESH_MS'),
    syncIntervalMs: positive(env, 'MYCELIUM_SPORES_SYNC_MS') ?? 60_000,
    windowMs: positive(env, 'MYCELIUM_SPORES_WINDOW_MS'),
    maxEntries: maxEntries(env.MYCELIUM_SPORES_MAX_ENTRIES)
  }
}
