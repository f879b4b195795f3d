// A minimal VMM: one VM, one memory slot with dirty logging, one vCPU running the page-writer
// guest, and nothing else (no interrupt controller, no devices: the guest's one way out is its
// progress report).
//
// The vCPU runs with KVM_RUN on koffi's worker thread; the event loop only sees each exit.
// The guest reports with `int3`. With software breakpoints routed to the VMM that is a
// KVM_EXIT_DEBUG with RIP on the `int3` (stepped over here). PVM does not route them: the
// breakpoint becomes an exception the guest has no handler for, and KVM_RUN returns
// KVM_EXIT_SHUTDOWN with the vCPU intact and RIP already past the `int3`; re-entering simply
// continues the guest. Both are accepted as reports, and only when RIP sits by an `int3` of the
// guest's code page; any other shutdown is a fault.
//
// A pause or checkpoint kicks the vCPU (vcpu-thread.ts): the guest stops at once, wherever it
// is, whether it ever reports or not, and its registers and memory are saved as they are (a
// write may be half done; the guest finishes it after a resume or a restore elsewhere). A paced
// or throttled guest is kicked at the end of its time slice too, so pacing holds for a guest
// that reports rarely or never. A report is stepped over at once, so a parked vCPU's saved
// registers always resume after it.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Checkpoint, DirtyPage, VcpuState } from '../checkpoint.ts'
import {
  KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_CHECK_EXTENSION, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE,
  EINTR, KVM_ENABLE_CAP, KVM_EXIT_DEBUG, KVM_EXIT_SHUTDOWN, KVM_GET_VCPU_MMAP_SIZE, KVM_MEM_LOG_DIRTY_PAGES,
  KVM_SET_TSS_ADDR, KVM_SET_USER_MEMORY_REGION, KvmEnableCap, KvmUserspaceMemoryRegion,
  closeFd, ioctlStruct, ioctlValue, openDevice
} from '../kvm/binding.ts'
import { KVM_DEVICE, assertKvmUsable } from '../kvm/capabilities.ts'
import {
  GUEST_PAGE_SIZE, GuestLayout, defaultPageWriterParams, loadPageWriter, readGuestCounter, readPageWriterParams
} from '../guest/page-writer.ts'
import type { PageWriterParams } from '../guest/page-writer.ts'
import { DirtyPageTracker } from './dirty-page-tracker.ts'
import { copyFullMemory } from './full-copy.ts'
import { GuestFaultError, GuestStoppedError } from './errors.ts'
import { GuestMemory } from './guest-memory.ts'
import { GuestPacer } from './guest-pacer.ts'
import { GuestWaiters } from './guest-waiters.ts'
import { SpareCopyBuffer } from './spare-copy-buffer.ts'
import { Vcpu } from './vcpu.ts'
import { prewarmVcpuThread } from './vcpu-thread.ts'
import { initialVcpuState } from './long-mode-state.ts'
import { silentLogger } from './running-guest.ts'
import { validateGuestImage, validateMemorySize } from './guest-image.ts'
import type { CheckpointTiming, GuestCommonOptions, GuestImage, GuestState, GuestStats, RunningGuest, VmmLogger } from './running-guest.ts'

export const DEFAULT_GUEST_MEMORY_BYTES = 256 * 1024 * 1024
/** Outside guest RAM: where KVM may put the real-mode TSS it needs on some hosts. */
const TSS_ADDRESS = 0xfffbd000
const MEMORY_SLOT = 0
/** Shared by every untouched page of a full checkpoint; never written. */
const ZERO_PAGE = new Uint8Array(GUEST_PAGE_SIZE)
/** Longest run slice of a paced or throttled guest before it is kicked (a guest may never report on its own). */
const PACED_SLICE_MS = 5
/** How often the counter is read for waiters while the vCPU stays in the guest (it may never exit by itself). */
const PROGRESS_POLL_MS = 2


/** Kept for callers written before the interpreter existed. */
export type KvmGuestState = GuestState

export interface KvmGuestStats extends GuestStats {
  manualDirtyLogProtect: boolean
  /** Times the VMM took the vCPU out of the guest (pauses, checkpoints, ends of paced slices). */
  kicks: number
}


export interface KvmGuestCommonOptions extends GuestCommonOptions {
  /** Use KVM_CLEAR_DIRTY_LOG when available (default true). */
  manualDirtyLogProtect?: boolean
}

export interface StartKvmGuestOptions extends KvmGuestCommonOptions {
  /** Guest RAM in bytes (multiple of 4096; default 256 MiB). */
  memoryBytes?: number
  /** The workload: pattern, rate, sizes. Unset fields take defaults. */
  workload?: Partial<PageWriterParams>
}


export interface RestoreKvmGuestOptions extends KvmGuestCommonOptions {
  /** Override the pacing rate stored in the image (pages/s, 0 = unpaced). */
  dirtyRate?: number
}

export class KvmGuest implements RunningGuest {
  readonly engine = 'kvm' as const
  readonly vmId: string
  readonly memoryBytes: number
  readonly pageSize = GUEST_PAGE_SIZE
  private readonly vmFd: number
  private readonly guestMemory: GuestMemory
  private readonly vcpu: Vcpu
  private readonly tracker: DirtyPageTracker
  private readonly pacer: GuestPacer
  private readonly logger: VmmLogger
  private readonly loopDone: Promise<void>
  private userPaused: boolean
  private holds = 0
  private halted = false
  private stopping = false
  private stopped = false
  private failure?: Error
  private parked = false
  private counterAtLastExit = 0
  private exits = 0
  private progressExits = 0
  private kicks = 0
  /** When the slice under way began (the paced-slice check reads it). */
  private sliceStartedAt = 0
  private sliceTimer?: ReturnType<typeof setInterval>
  private progressPoll?: ReturnType<typeof setInterval>
  private lastCheckpoint?: CheckpointTiming
  private readonly waiters = new GuestWaiters()
  private readonly spare = new SpareCopyBuffer()
  private wakeLoop?: () => void
  private captureChain: Promise<unknown> = Promise.resolve()

  private constructor (vmFd: number, memory: GuestMemory, vcpu: Vcpu, tracker: DirtyPageTracker, options: KvmGuestCommonOptions & { dirtyRate: number }) {
    this.vmId = options.vmId ?? randomUUID()
    this.memoryBytes = memory.size
    this.vmFd = vmFd
    this.guestMemory = memory
    this.vcpu = vcpu
    this.tracker = tracker
    this.pacer = new GuestPacer(options.dirtyRate)
    this.logger = options.logger ?? silentLogger
    this.userPaused = options.paused === true
    this.counterAtLastExit = readGuestCounter(memory.bytes)
    this.loopDone = this.runLoop()
  }

  /** Create a VM, load the page-writer guest and its parameters, and start it. */
  static async start (options: StartKvmGuestOptions = {}): Promise<KvmGuest> {
    const memoryBytes = options.memoryBytes ?? DEFAULT_GUEST_MEMORY_BYTES
    validateMemorySize(memoryBytes)
    const params = defaultPageWriterParams(memoryBytes, options.workload)
    const memory = GuestMemory.allocate(memoryBytes)
    try {
      loadPageWriter(memory.bytes, params)
      return await KvmGuest.create(memory, initialVcpuState, { ...options, dirtyRate: params.dirtyRate })
    } catch (error) {
      memory.release()
      throw error
    }
  }

  /**
   * Create a VM from a memory image and vCPU state (failover, end of a migration): the guest
   * continues exactly where the image was taken. Memory from `allocateGuestMemory` is adopted
   * without a copy (it belongs to the guest from then on, and `stop()` unmaps it); any other
   * memory is copied.
   */
  static async restore (image: GuestImage, options: RestoreKvmGuestOptions = {}): Promise<KvmGuest> {
    validateGuestImage(image)
    const params = readPageWriterParams(image.memory)
    let memory = GuestMemory.of(image.memory)
    let copied = false
    if (memory == null) {
      memory = GuestMemory.allocate(image.memoryBytes)
      memory.bytes.set(image.memory)
      copied = true
    }
    try {
      return await KvmGuest.create(memory, () => image.vcpu, { ...options, vmId: options.vmId ?? image.vmId, dirtyRate: options.dirtyRate ?? params.dirtyRate })
    } catch (error) {
      if (copied) memory.release()
      throw error
    }
  }

  private static async create (
    memory: GuestMemory,
    vcpuState: (reset: VcpuState) => VcpuState,
    options: KvmGuestCommonOptions & { dirtyRate: number }
  ): Promise<KvmGuest> {
    const report = assertKvmUsable()
    let kvmFd = openDevice(KVM_DEVICE)
    let vmFd = -1
    let vcpu: Vcpu | undefined
    let tracker: DirtyPageTracker | undefined
    try {
      vmFd = ioctlValue(kvmFd, KVM_CREATE_VM, 0, 'KVM_CREATE_VM')
      ioctlValue(vmFd, KVM_SET_TSS_ADDR, TSS_ADDRESS, 'KVM_SET_TSS_ADDR')
      const manualProtect = (options.manualDirtyLogProtect ?? true) &&
        (ioctlValue(vmFd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, 'KVM_CHECK_EXTENSION') & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) !== 0
      if (manualProtect) {
        // Before the slot exists, so the slot starts in manual-protect mode.
        ioctlStruct(vmFd, KVM_ENABLE_CAP, KvmEnableCap, {
          cap: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, flags: 0, args: [KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, 0, 0, 0], pad: new Array(64).fill(0)
        }, 'KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)')
      }
      ioctlStruct(vmFd, KVM_SET_USER_MEMORY_REGION, KvmUserspaceMemoryRegion, {
        slot: MEMORY_SLOT, flags: KVM_MEM_LOG_DIRTY_PAGES, guest_phys_addr: 0, memory_size: memory.size, userspace_addr: memory.address
      }, 'KVM_SET_USER_MEMORY_REGION')
      const vcpuFd = ioctlValue(vmFd, KVM_CREATE_VCPU, 0, 'KVM_CREATE_VCPU')
      vcpu = new Vcpu(vcpuFd, ioctlValue(kvmFd, KVM_GET_VCPU_MMAP_SIZE, 0, 'KVM_GET_VCPU_MMAP_SIZE'))
      vcpu.trapBreakpoints()
      vcpu.setState(vcpuState(vcpu.getState()))
      tracker = new DirtyPageTracker({ vmFd, slot: MEMORY_SLOT, pages: memory.size / GUEST_PAGE_SIZE, manualProtect })
      closeFd(kvmFd)
      kvmFd = -1
      await vcpu.startThread()
      options.logger?.debug('KVM guest: %d MiB, manual dirty-log protect %s, dirty ring available %d bytes', memory.size >> 20, manualProtect, report.dirtyLogRingBytes)
      return new KvmGuest(vmFd, memory, vcpu, tracker, options)
    } catch (error) {
      tracker?.close()
      await vcpu?.close()
      if (vmFd >= 0) closeFd(vmFd)
      throw error
    } finally {
      if (kvmFd >= 0) closeFd(kvmFd)
    }
  }

  get state (): GuestState {
    if (this.stopped || this.stopping) return 'stopped'
    if (this.failure != null) return 'failed'
    if (this.halted) return 'halted'
    if (this.userPaused) return 'paused'
    if (this.pacer.throttleFraction >= 1) return 'throttled'
    return 'running'
  }

  /** Why the guest failed, if it did. */
  get error (): Error | undefined {
    return this.failure
  }

  guestCounter (): number {
    if (this.guestMemory.isReleased) return this.counterAtLastExit
    return readGuestCounter(this.guestMemory.bytes)
  }

  memory (): Uint8Array {
    return this.guestMemory.bytes
  }

  stats (): KvmGuestStats {
    return {
      engine: this.engine,
      state: this.state,
      guestCounter: this.guestCounter(),
      exits: this.exits,
      progressExits: this.progressExits,
      kicks: this.kicks,
      dirtyRate: this.pacer.dirtyRate,
      throttle: this.pacer.throttleFraction,
      manualDirtyLogProtect: this.tracker.manualProtect,
      lastCheckpoint: this.lastCheckpoint
    }
  }

  setThrottle (fraction: number): void {
    this.pacer.setThrottle(fraction)
    this.applyPacing()
  }

  /** Pages per second the guest is paced to (0 = as fast as it runs). */
  setDirtyRate (pagesPerSecond: number): void {
    this.pacer.setRate(pagesPerSecond)
    this.pacer.restart(performance.now())
    this.applyPacing()
  }

  /** New pacing holds from the next slice; a slice under way with no time limit is ended now. */
  private applyPacing (): void {
    const paced = this.pacer.dirtyRate > 0 || this.pacer.throttleFraction > 0
    if (paced && this.sliceTimer == null) this.kick()
    this.wake()
  }

  async pause (): Promise<void> {
    this.userPaused = true
    await this.whenParked()
  }

  resume (): void {
    if (!this.userPaused) return
    this.userPaused = false
    this.wake()
  }

  /** Resolves once the guest's counter reaches `target` (rejects if it halts, fails or stops first). */
  async waitForCounter (target: number, options: { signal?: AbortSignal } = {}): Promise<number> {
    await this.waitForProgress(() => this.guestCounter() >= target, options.signal, `counter ${target}`)
    return this.guestCounter()
  }

  /** Resolves once the guest has halted (a bounded workload finished). */
  async waitUntilHalted (options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.waitForProgress(() => this.halted, options.signal, 'halt')
  }

  async checkpoint (epoch: number, options: { signal?: AbortSignal } = {}): Promise<Checkpoint> {
    return await this.exclusive(async () => await this.capture(epoch, false, options.signal))
  }

  async fullCheckpoint (epoch: number, options: { signal?: AbortSignal } = {}): Promise<Checkpoint> {
    return await this.exclusive(async () => await this.capture(epoch, true, options.signal))
  }

  /** Stop the vCPU for good and free the VM, its vCPU and its memory. */
  async stop (): Promise<void> {
    if (this.stopping) {
      await this.loopDone
      return
    }
    this.stopping = true
    this.spare.close()
    this.kick()
    this.wake()
    await this.loopDone
    await this.captureChain.catch(() => {})
    this.stopped = true
    if (!this.guestMemory.isReleased) this.counterAtLastExit = readGuestCounter(this.guestMemory.bytes)
    this.tracker.close()
    await this.vcpu.close()
    closeFd(this.vmFd)
    this.guestMemory.release()
    this.waiters.close(new GuestStoppedError(`guest ${this.vmId} stopped`))
  }

  private async exclusive<T> (task: () => Promise<T>): Promise<T> {
    const run = this.captureChain.then(task, task)
    this.captureChain = run.catch(() => {})
    return await run
  }

  private async capture (epoch: number, full: boolean, signal: AbortSignal | undefined): Promise<Checkpoint> {
    signal?.throwIfAborted()
    if (this.stopping) throw new GuestStoppedError(`guest ${this.vmId} is stopped`)
    const requestedAt = performance.now()
    this.holds++
    try {
      await this.whenParked(signal)
      if (this.stopping) throw new GuestStoppedError(`guest ${this.vmId} is stopped`)
      const pausedAt = performance.now()
      const indices = this.tracker.collect()
      const collectedAt = performance.now()
      const memory = this.guestMemory.bytes
      let pages: DirtyPage[]
      if (full) {
        pages = await copyFullMemory(memory, this.guestMemory.residency(), GUEST_PAGE_SIZE, ZERO_PAGE)
      } else {
        const copy = this.spare.take(indices.length * GUEST_PAGE_SIZE)
        pages = new Array<DirtyPage>(indices.length)
        for (let i = 0; i < indices.length; i++) {
          const offset = indices[i] * GUEST_PAGE_SIZE
          const data = copy.subarray(i * GUEST_PAGE_SIZE, (i + 1) * GUEST_PAGE_SIZE)
          data.set(memory.subarray(offset, offset + GUEST_PAGE_SIZE))
          pages[i] = { index: indices[i], data }
        }
      }
      const copiedAt = performance.now()
      const vcpu = this.vcpu.getState()
      const guestCounter = readGuestCounter(memory)
      const doneAt = performance.now()
      this.lastCheckpoint = {
        epoch,
        full,
        pages: pages.length,
        parkMs: pausedAt - requestedAt,
        pauseMs: doneAt - pausedAt,
        collectMs: collectedAt - pausedAt,
        copyMs: copiedAt - collectedAt
      }
      return { vmId: this.vmId, epoch, full, memoryBytes: this.memoryBytes, pageSize: GUEST_PAGE_SIZE, pages, vcpu, guestCounter, takenAt: Date.now(), engine: this.engine }
    } finally {
      this.holds--
      this.wake()
      if (!full && !this.stopping) this.spare.prepare(this.lastCheckpoint?.pages ?? 0)
    }
  }

  private mayRun (): boolean {
    return !this.stopping && !this.userPaused && this.holds === 0 && this.pacer.throttleFraction < 1 && !this.halted && this.failure == null
  }

  private wake (): void {
    const wake = this.wakeLoop
    this.wakeLoop = undefined
    wake?.()
  }

  private async idle (untilMs?: number): Promise<void> {
    const woken = new Promise<void>((resolve) => { this.wakeLoop = resolve })
    if (untilMs == null) {
      await woken
      return
    }
    const controller = new AbortController()
    await Promise.race([woken, sleep(Math.max(0, untilMs - performance.now()), undefined, { signal: controller.signal }).catch(() => {})])
    controller.abort()
    this.wakeLoop = undefined
  }

  private async runLoop (): Promise<void> {
    try {
      while (!this.stopping) {
        if (!this.mayRun()) {
          await this.park()
          continue
        }
        // The pacer's bounded catch-up already keeps a guest from bursting after a pause.
        this.parked = false
        const startAt = this.pacer.startAt()
        if (startAt - performance.now() >= 1) {
          await this.idle(startAt)
          continue
        }
        await this.runSlice()
      }
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error))
      this.logger.error('KVM guest %s failed: %s', this.vmId, this.failure.message)
    }
    this.stopSliceTimer()
    if (!this.stopping) await this.park()
    this.parked = true
    this.waiters.parked()
  }

  private async runSlice (): Promise<void> {
    const startedAt = performance.now()
    this.sliceStartedAt = startedAt
    this.updateSliceTimer()
    const { result, errno } = await this.vcpu.enter()
    const sliceMs = performance.now() - startedAt
    this.exits++
    this.handleExit(result, errno, startedAt, sliceMs)
  }

  private handleExit (result: number, errno: number, startedAt: number, sliceMs: number): void {
    const reason = this.vcpu.exitReason
    if (result < 0 && errno === EINTR) {
      // Kicked (or another signal reached the vCPU thread): the guest stopped between two
      // instructions. Account for what it wrote, as at a report.
      this.recordProgress(startedAt, sliceMs)
      return
    }
    if (result < 0) throw new GuestFaultError(reason, `KVM_RUN failed (errno ${errno}, exit reason ${reason})`)
    const report = reason === KVM_EXIT_DEBUG ? this.vcpu.stepOverBreakpoint() : reason === KVM_EXIT_SHUTDOWN ? this.trappedReport() : undefined
    if (report != null) {
      if (report.rdx === GuestLayout.reportDone) this.halted = true
      else if (report.rdx !== GuestLayout.reportProgress) throw new GuestFaultError(reason, `guest made an unknown report ${report.rdx}`)
      this.progressExits++
      this.recordProgress(startedAt, sliceMs)
      return
    }
    throw new GuestFaultError(reason, `guest stopped with KVM exit reason ${reason} (${this.vcpu.exitDetail()})`)
  }

  private recordProgress (startedAt: number, sliceMs: number): void {
    const counter = readGuestCounter(this.guestMemory.bytes)
    this.pacer.record(startedAt, sliceMs, counter - this.counterAtLastExit)
    this.counterAtLastExit = counter
    this.notifyProgress()
  }

  /** Take the vCPU out of the guest now, if it is in. */
  private kick (): void {
    if (!this.vcpu.inGuest) return
    this.kicks++
    this.vcpu.kick()
  }

  /**
   * A paced or throttled guest runs in slices of at most PACED_SLICE_MS: one that does not
   * report by then is kicked, so the pacer can hold it back. An unpaced guest runs until it
   * reports or is asked to stop, with no timer at all.
   */
  private updateSliceTimer (): void {
    const paced = this.pacer.dirtyRate > 0 || this.pacer.throttleFraction > 0
    if (!paced) {
      this.stopSliceTimer()
      return
    }
    if (this.sliceTimer != null) return
    this.sliceTimer = setInterval(() => {
      if (this.vcpu.inGuest && performance.now() - this.sliceStartedAt >= PACED_SLICE_MS) this.kick()
    }, PACED_SLICE_MS)
    this.sliceTimer.unref()
  }

  private stopSliceTimer (): void {
    if (this.sliceTimer == null) return
    clearInterval(this.sliceTimer)
    this.sliceTimer = undefined
  }

  /** A shutdown right after one of the guest's `int3` reports (see the top of this file), or undefined for a real fault. */
  private trappedReport (): { rax: number, rdx: number } | undefined {
    const report = this.vcpu.reportRegisters()
    const memory = this.guestMemory.bytes
    const inCode = report.rip > GuestLayout.codeAddress && report.rip <= GuestLayout.codeAddress + GUEST_PAGE_SIZE
    return inCode && memory[report.rip - 1] === 0xcc ? report : undefined
  }

  /** Stop (the vCPU is out of the guest, at a consistent point) until the guest may run again. */
  private async park (): Promise<void> {
    this.parked = true
    this.waiters.parked()
    if (this.halted || this.failure != null) this.notifyProgress()
    if (!this.stopping && !this.mayRun()) await this.idle()
  }

  private async whenParked (signal?: AbortSignal): Promise<void> {
    if (this.parked && !this.mayRun()) return
    if (this.stopped) return
    this.kick()
    this.wake()
    await this.waiters.untilParked(signal)
  }

  private async waitForProgress (check: () => boolean, signal: AbortSignal | undefined, what: string): Promise<void> {
    signal?.throwIfAborted()
    if (check()) return
    if (this.stopping) throw new GuestStoppedError(`guest ${this.vmId} stopped before ${what}`)
    const waiting = this.waiters.until(check, signal)
    this.pollProgress()
    await waiting
  }

  /** While someone waits for progress, read the counter now and then: the guest need not exit for it to move. */
  private pollProgress (): void {
    if (this.progressPoll != null) return
    this.progressPoll = setInterval(() => {
      if (this.vcpu.inGuest) this.notifyProgress()
      if (!this.waiters.awaitingProgress || this.stopped) {
        clearInterval(this.progressPoll)
        this.progressPoll = undefined
      }
    }, PROGRESS_POLL_MS)
  }

  /** Settle the waiters whose condition holds now; reject the rest once the guest failed or halted. */
  private notifyProgress (): void {
    this.waiters.progress(() => {
      if (this.failure != null) return this.failure
      if (this.halted) return new GuestStoppedError(`guest ${this.vmId} halted at counter ${this.guestCounter()}`)
      return undefined
    })
  }
}

/** Create a VM running the page-writer guest (the daemon's `vm run`). */
export async function startKvmGuest (options: StartKvmGuestOptions = {}): Promise<KvmGuest> {
  return await KvmGuest.start(options)
}

/**
 * A restorer for a backup: given the image of a complete epoch (memory, vCPU), start the guest
 * here. Matches the replication side's `GuestRestorer`; pair it with `allocateGuestMemory` as
 * the replica allocator so the resume adopts the replica's memory without a copy.
 */
export function kvmGuestRestorer (defaults: RestoreKvmGuestOptions = {}): ((image: GuestImage, options?: { signal?: AbortSignal }) => Promise<KvmGuest>) & { prepare: () => void } {
  const restore = async (image: GuestImage, options: { signal?: AbortSignal } = {}): Promise<KvmGuest> => {
    options.signal?.throwIfAborted()
    return await KvmGuest.restore(image, defaults)
  }
  // Start the vCPU thread while the replica fills, not during the resume.
  return Object.assign(restore, { prepare: () => { prewarmVcpuThread() } })
}
