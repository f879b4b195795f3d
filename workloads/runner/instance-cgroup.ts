// The cgroup one instance runs in, whichever kind the host has (cgroup-v1.ts, cgroup-v2.ts).
// It receives each spawned process right after spawn, is the last word on which processes are
// still the instance's (a process that left the process group did not leave the cgroup), and
// is removed at stop once they are gone. Its limits say what the writes achieved.
import { mkdirSync } from 'node:fs'
import type { Controller, EnforcedLimits } from './enforced-limits.ts'

export interface InstanceCgroup {
  /** what the instance is held to, as far as the writes so far went */
  readonly limits: EnforcedLimits
  admit (pid: number): void
  signal (signal: NodeJS.Signals): void
  members (): number[]
  /** kills what is left, removes the cgroup; says what could not be removed */
  remove (): Promise<string | undefined>
}

export interface CgroupResources { cpuMillis: number, memoryMb: number }

export const PIDS_MAX = 512
export const CPU_PERIOD_US = 100_000

export function memoryBytes (resources: CgroupResources): number {
  return Math.round(resources.memoryMb * 1024 * 1024)
}

/** cpuMillis of a CPU per 100 ms period; the kernel's smallest quota is 1 ms */
export function cpuQuotaUs (resources: CgroupResources): number {
  return Math.max(1_000, Math.round(resources.cpuMillis * 100))
}

/** The limits with some controllers marked not enforced, and why. */
export function withheld (limits: EnforcedLimits, controllers: readonly Controller[], reason: string): EnforcedLimits {
  const next: EnforcedLimits = { ...limits, namespaces: [...limits.namespaces] }
  for (const c of controllers) next[c] = false
  next.reason = limits.reason === undefined ? reason : `${limits.reason}; ${reason}`
  return next
}

export function makeCgroupDir (dir: string): string | undefined {
  try {
    mkdirSync(dir, { recursive: true })
    return undefined
  } catch (err) {
    return `cannot create ${dir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`
  }
}
