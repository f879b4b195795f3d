// `POST /vm/run` bodies, checked once here: what the rest of the feature may rely on.
import { ApiError } from '../api/index.ts'
import { GUEST_ENGINES, type GuestEngine } from '../../ram-replication/index.ts'

// `full` rewrites whole pages with incompressible data (the heaviest load per page).
export const PATTERNS = ['random', 'sequential', 'hot', 'full'] as const
export const THROTTLES = ['linear', 'exponential', 'none'] as const
export const EMERGENCY_MODES = ['pause', 'best-effort'] as const

export interface RunRequest {
  memoryMb: number
  backups: number
  links: number
  dirtyRate: number
  pattern: typeof PATTERNS[number]
  /** Writes between the guest's progress reports; 0: it never reports (the VMM stops it by kicking its vCPU); undefined: the guest's default. */
  reportEvery: number | undefined
  throttle: typeof THROTTLES[number]
  emergency: typeof EMERGENCY_MODES[number]
  /** Hash guest memory at every epoch and compare with the backups' hashes (costs a pass over memory per epoch). */
  verifyEpochs: boolean
  /** Peers that must be among the backups (the rest are chosen). */
  pinnedBackups: string[]
  /** Which engine runs the guest; undefined: KVM where this node can use it, the interpreter otherwise. */
  engine: GuestEngine | undefined
}

function integer (value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw new ApiError(400, `${name} must be a whole number from ${min} to ${max}`)
  return value
}

function oneOf<T extends string> (value: unknown, name: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) throw new ApiError(400, `${name} must be ${allowed.join(', ')}`)
  return value as T
}

export function parseRunRequest (body: unknown): RunRequest {
  const b = body !== null && typeof body === 'object' ? body as Record<string, unknown> : {}
  if (b.verifyEpochs !== undefined && typeof b.verifyEpochs !== 'boolean') throw new ApiError(400, 'verifyEpochs must be true or false')
  const pinned = b.pinnedBackups ?? []
  if (!Array.isArray(pinned) || !pinned.every(peer => typeof peer === 'string' && /^[1-9A-HJ-NP-Za-km-z]{40,64}$/.test(peer))) throw new ApiError(400, 'pinnedBackups must be a list of peer ids')
  const backups = integer(b.backups, 'backups', 1, 8, Math.max(1, pinned.length))
  if (pinned.length > backups) throw new ApiError(400, `${pinned.length} backups named but only ${backups} wanted (raise --backups)`)
  return {
    memoryMb: integer(b.memoryMb, 'memoryMb', 1, 16384, 256),
    backups,
    links: integer(b.links, 'links', 1, 16, 4),
    dirtyRate: integer(b.dirtyRate, 'dirtyRate', 0, 10_000_000, 1000),
    pattern: oneOf(b.pattern, 'pattern', PATTERNS, 'random'),
    reportEvery: b.reportEvery === undefined ? undefined : integer(b.reportEvery, 'reportEvery', 0, 1 << 20, 0),
    throttle: oneOf(b.throttle, 'throttle', THROTTLES, 'none'),
    emergency: oneOf(b.emergency, 'emergency', EMERGENCY_MODES, 'pause'),
    verifyEpochs: b.verifyEpochs === true,
    pinnedBackups: pinned as string[],
    engine: b.engine === undefined ? undefined : oneOf(b.engine, 'engine', GUEST_ENGINES, 'kvm')
  }
}
