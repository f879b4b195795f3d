// Configurable bounds of the spore: entries per type and tier, what one writer may hold of a
// type (so one member cannot fill a type and lock everyone else out), and the window of
// temporal data.
import type { EntryType } from './entry/types.ts'

export interface SporeLimits {
  /** Maximum records per type in one tier. */
  maxEntries: Record<EntryType, number>
  /** The share of a type's maximum one origin may hold in a tier (at least ORIGIN_MIN records). */
  originShare: number
  /** Temporal entries (health, usage, connection, uptime) older than this are dropped (ms). */
  windowMs: number
  /** How far ahead of the local clock an issuedAt may be (ms). */
  maxClockSkewMs: number
  /**
   * Exclusions never leave fewer committee candidates than this: 3f+1 for the network's f. A
   * proven-Byzantine member still needed to fill a committee stays, as one of the f faults,
   * until another sclerotium can take its place (taking it out would stop the epochs).
   */
  minCandidates: number
}

export const DEFAULT_LIMITS: SporeLimits = {
  maxEntries: { node: 10_000, health: 10_000, trust: 10_000, usage: 10_000, connection: 50_000, uptime: 10_000, service: 20_000, role: 10_000, plan: 4096, bundle: 10_000, exclusion: 1024 },
  originShare: 1 / 16,
  windowMs: 24 * 3600_000,
  maxClockSkewMs: 5 * 60_000,
  minCandidates: 4
}

/** No origin is held to fewer records of a type than this, whatever the share. */
export const ORIGIN_MIN = 16

/** The records of `type` one origin may hold in a tier. */
export function originQuota (limits: SporeLimits, type: EntryType): number {
  return Math.max(ORIGIN_MIN, Math.floor(limits.maxEntries[type] * limits.originShare))
}

export function limitsWith (overrides: { maxEntries?: Partial<Record<EntryType, number>>, originShare?: number, windowMs?: number, maxClockSkewMs?: number, minCandidates?: number } = {}): SporeLimits {
  return {
    maxEntries: { ...DEFAULT_LIMITS.maxEntries, ...overrides.maxEntries },
    originShare: overrides.originShare ?? DEFAULT_LIMITS.originShare,
    windowMs: overrides.windowMs ?? DEFAULT_LIMITS.windowMs,
    maxClockSkewMs: overrides.maxClockSkewMs ?? DEFAULT_LIMITS.maxClockSkewMs,
    minCandidates: overrides.minCandidates ?? DEFAULT_LIMITS.minCandidates
  }
}
