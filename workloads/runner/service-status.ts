// An instance as the rest of the node sees it, and publishes: where it is in its life, its
// process, how often it was restarted and how it last ended, and what holds it.
import type { EnforcedLimits } from './enforced-limits.ts'

/**
 * starting → healthy ⇄ unhealthy while the process runs; backoff between an exit and the
 * restart; stopped before start and after stop.
 */
export type InstanceState = 'starting' | 'healthy' | 'unhealthy' | 'backoff' | 'stopped'

export interface InstanceExit {
  code: number | null
  signal: string | null
  at: number
}

export interface InstanceStatus {
  instanceId: string
  state: InstanceState
  pid?: number
  port: number
  restarts: number
  startedAt?: number
  lastExit?: InstanceExit
  limits: EnforcedLimits
}
