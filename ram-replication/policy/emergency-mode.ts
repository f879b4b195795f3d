// What to do when the backlog passes its limit despite throttling.
// `pause`: consistency first — stop the vCPU until the backlog drains below `resumeBytes`.
// `best-effort`: the guest never waits — a backup that lags past the limit is dropped from the
// epoch stream and resynced from a full checkpoint once it has caught up with what it was sent.

export type EmergencyMode = 'pause' | 'best-effort'

export interface EmergencyLimits {
  /** Backlog at which the emergency mode acts. */
  limitBytes: number
  /** Backlog under which a paused guest resumes (hysteresis, below `limitBytes`). */
  resumeBytes: number
}

export type GuestDecision = 'run' | 'pause' | 'resume' | 'stay-paused'

/** The `pause` mode's decision for the guest, given the worst backup's backlog. */
export function decideGuest (mode: EmergencyMode, limits: EmergencyLimits, backlogBytes: number, paused: boolean): GuestDecision {
  if (mode !== 'pause') return paused ? 'resume' : 'run'
  if (paused) return backlogBytes <= limits.resumeBytes ? 'resume' : 'stay-paused'
  return backlogBytes >= limits.limitBytes ? 'pause' : 'run'
}

export type BackupDecision = 'send' | 'drop-to-resync'

/** The `best-effort` mode's decision for one backup, given its own backlog. */
export function decideBackup (mode: EmergencyMode, limits: EmergencyLimits, backlogBytes: number): BackupDecision {
  return mode === 'best-effort' && backlogBytes >= limits.limitBytes ? 'drop-to-resync' : 'send'
}

export class InvalidEmergencyLimitsError extends Error {
  readonly name = 'InvalidEmergencyLimitsError'
}

export function validateEmergencyLimits (limits: EmergencyLimits): EmergencyLimits {
  if (!(limits.limitBytes > 0)) throw new InvalidEmergencyLimitsError('limitBytes must be positive')
  if (!(limits.resumeBytes >= 0 && limits.resumeBytes < limits.limitBytes)) throw new InvalidEmergencyLimitsError('need 0 <= resumeBytes < limitBytes')
  return limits
}
