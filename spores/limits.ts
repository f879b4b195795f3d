// Configurable bounds of the spore: entries per type and tier, and the window of temporal data.
import type { EntryType } from './entry/types.ts'

export interface SporeLimits {
  /** Maximum records per type in one tier. */
  maxEntries: Record<EntryType, number>
  /** Temporal entries (health, usage, connection, uptime) older than this are dropped (ms). */
  windowMs: number
  /** How far ahead of the local clock an issuedAt may be (ms). */
  maxClockSkewMs: number
}

export const DEFAULT_LIMITS: SporeLimits = {
  maxEntries: { node: 10_000, health: 10_000, trust: 10_000, usage: 10_000, connection: 50_000, uptime: 10_000, service: 20_000, role: 10_000 },
  windowMs: 24 * 3600_000,
  maxClockSkewMs: 5 * 60_000
}

export function limitsWith (overrides: { maxEntries?: Partial<Record<EntryType, number>>, windowMs?: number, maxClockSkewMs?: number } = {}): SporeLimits {
  return {
    maxEntries: { ...DEFAULT_LIMITS.maxEntries, ...overrides.maxEntries },
    windowMs: overrides.windowMs ?? DEFAULT_LIMITS.windowMs,
    maxClockSkewMs: overrides.maxClockSkewMs ?? DEFAULT_LIMITS.maxClockSkewMs
  }
}
