// What every execution engine offers: the KVM VMM (kvm-guest.ts) and the interpreter
// (interpreted-guest.ts) both implement `RunningGuest`, so the daemon, the replication side and
// the tests do not care which one runs a guest. Checkpoints carry the vCPU as raw
// kvm_regs/kvm_sregs bytes in both, so an image from one engine resumes on the other.
import type { ReplicatedGuest, VcpuState } from '../checkpoint.ts'

export const GUEST_ENGINES = ['kvm', 'interpreted'] as const
export type GuestEngine = typeof GUEST_ENGINES[number]

export type GuestState = 'running' | 'paused' | 'throttled' | 'halted' | 'failed' | 'stopped'

export interface VmmLogger {
  info: (message: string, ...args: unknown[]) => void
  warn: (message: string, ...args: unknown[]) => void
  debug: (message: string, ...args: unknown[]) => void
  error: (message: string, ...args: unknown[]) => void
}

export const silentLogger: VmmLogger = { info () {}, warn () {}, debug () {}, error () {} }

export interface CheckpointTiming {
  epoch: number
  full: boolean
  pages: number
  /** From the request until the vCPU was parked (the guest still runs meanwhile). */
  parkMs: number
  /** The vCPU stopped: dirty log, page copy and register save. */
  pauseMs: number
  collectMs: number
  copyMs: number
}

export interface GuestStats {
  engine: GuestEngine
  state: GuestState
  guestCounter: number
  /** Returns from the guest to the VMM (KVM exits; interpreter slices). */
  exits: number
  /** The guest's progress reports. */
  progressExits: number
  dirtyRate: number
  throttle: number
  lastCheckpoint?: CheckpointTiming
}

/** What a guest is resumed from: the memory and vCPU of one consistent epoch. */
export interface GuestImage {
  vmId: string
  memory: Uint8Array
  memoryBytes: number
  pageSize: number
  vcpu: VcpuState
}

export interface GuestCommonOptions {
  vmId?: string
  /** Start with the vCPU paused (resume() starts it). */
  paused?: boolean
  logger?: VmmLogger
}

export interface RunningGuest extends ReplicatedGuest {
  readonly engine: GuestEngine
  readonly state: GuestState
  /** Why the guest failed, if it did. */
  readonly error: Error | undefined
  stats: () => GuestStats
  /** Pages per second the guest is paced to (0 = as fast as it runs). */
  setDirtyRate: (pagesPerSecond: number) => void
  /** Resolves once the guest's counter reaches `target` (rejects if it halts, fails or stops first). */
  waitForCounter: (target: number, options?: { signal?: AbortSignal }) => Promise<number>
  /** Resolves once the guest has halted (a bounded workload finished). */
  waitUntilHalted: (options?: { signal?: AbortSignal }) => Promise<void>
}

/** Starts a guest from a backup's image of a complete epoch (failover, end of a migration). */
export type RunningGuestRestorer = (image: GuestImage, options?: { signal?: AbortSignal }) => Promise<RunningGuest>
