// A minimal VMM: one VM, one memory slot with dirty logging, one vCPU running the page-writer
// guest, and nothing else (no interrupt controller, no devices: the guest's one way out is its
// progress report).
//
// The controls (pause, pacing, checkpoints, stop) are PageWriterGuest's (page-writer-guest.ts);
// this file is the KVM half: the VM, its memory slot and dirty log, and the run slice. The vCPU
// runs KVM_RUN on a thread of its own (vcpu.ts, vcpu-thread.ts); the event loop only sees each
// exit. The guest reports with `int3`. With software breakpoints routed to the VMM that is a
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
import type { VcpuState } from '../checkpoint.ts'
import {
  EINTR, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_CHECK_EXTENSION, KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE,
  KVM_ENABLE_CAP, KVM_EXIT_DEBUG, KVM_EXIT_SHUTDOWN, KVM_GET_VCPU_MMAP_SIZE, KVM_MEM_LOG_DIRTY_PAGES,
  KVM_SET_TSS_ADDR, KVM_SET_USER_MEMORY_REGION, KvmEnableCap, KvmUserspaceMemoryRegion,
  closeFd, ioctlStruct, ioctlValue, openDevice
} from '../kvm/binding.ts'
import { KVM_DEVICE, assertKvmUsable } from '../kvm/capabilities.ts'
import {
  GUEST_PAGE_SIZE, GuestLayout, defaultPageWriterParams, loadPageWriter, readPageWriterParams
} from '../guest/page-writer.ts'
import type { PageWriterParams } from '../guest/page-writer.ts'
import { DirtyPageTracker } from './dirty-page-tracker.ts'
import { GuestFaultError } from './errors.ts'
import { GuestMemory } from './guest-memory.ts'
import { PageWriterGuest } from './page-writer-guest.ts'
import { Vcpu } from './vcpu.ts'
import { prewarmVcpuThread } from './vcpu-thread.ts'
import { initialVcpuState } from './long-mode-state.ts'
import { validateGuestImage, validateMemorySize } from './guest-image.ts'
import type { GuestCommonOptions, GuestImage, GuestState, GuestStats } from './running-guest.ts'

export const DEFAULT_GUEST_MEMORY_BYTES = 256 * 1024 * 1024
/** Outside guest RAM: where KVM may put the real-mode TSS it needs on some hosts. */
const TSS_ADDRESS = 0xfffbd000
const MEMORY_SLOT = 0
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

export class KvmGuest extends PageWriterGuest {
  readonly engine = 'kvm' as const
  private readonly vmFd: number
  private readonly vcpu: Vcpu
  private readonly tracker: DirtyPageTracker
  private exits = 0
  private kicks = 0
  /** When the slice under way began (the paced-slice check reads it). */
  private sliceStartedAt = 0
  private sliceTimer?: ReturnType<typeof setInterval>
  private progressPoll?: ReturnType<typeof setInterval>

  private constructor (vmFd: number, memory: GuestMemory, vcpu: Vcpu, tracker: DirtyPageTracker, options: KvmGuestCommonOptions & { dirtyRate: number }) {
    super(memory, options)
    this.vmFd = vmFd
    this.vcpu = vcpu
    this.tracker = tracker
    this.startLoop()
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

  protected collectDirty (): number[] {
    return this.tracker.collect()
  }

  protected saveVcpu (): VcpuState {
    return this.vcpu.getState()
  }

  protected async releaseEngine (): Promise<void> {
    this.tracker.close()
    await this.vcpu.close()
    closeFd(this.vmFd)
  }

  protected async runSlice (): Promise<void> {
    const startedAt = performance.now()
    this.sliceStartedAt = startedAt
    this.updateSliceTimer()
    const { result, errno } = await this.vcpu.enter()
    const sliceMs = performance.now() - startedAt
    this.exits++
    const reason = this.vcpu.exitReason
    if (result < 0 && errno === EINTR) {
      // Kicked (or another signal reached the vCPU thread): the guest stopped between two
      // instructions. Account for what it wrote, as at a report.
      this.account(startedAt, sliceMs)
      return
    }
    if (result < 0) throw new GuestFaultError(reason, `KVM_RUN failed (errno ${errno}, exit reason ${reason})`)
    const report = reason === KVM_EXIT_DEBUG ? this.vcpu.stepOverBreakpoint() : reason === KVM_EXIT_SHUTDOWN ? this.trappedReport() : undefined
    if (report == null) throw new GuestFaultError(reason, `guest stopped with KVM exit reason ${reason} (${this.vcpu.exitDetail()})`)
    if (report.rdx === GuestLayout.reportDone) this.halted = true
    else if (report.rdx !== GuestLayout.reportProgress) throw new GuestFaultError(reason, `guest made an unknown report ${report.rdx}`)
    this.progressExits++
    this.account(startedAt, sliceMs)
  }

  /** A shutdown right after one of the guest's `int3` reports (see the top of this file), or undefined for a real fault. */
  private trappedReport (): { rax: number, rdx: number } | undefined {
    const report = this.vcpu.reportRegisters()
    const memory = this.guestMemory.bytes
    const inCode = report.rip > GuestLayout.codeAddress && report.rip <= GuestLayout.codeAddress + GUEST_PAGE_SIZE
    return inCode && memory[report.rip - 1] === 0xcc ? report : undefined
  }

  /** Take the vCPU out of the guest now, if it is in. */
  protected interrupt (): void {
    if (!this.vcpu.inGuest) return
    this.kicks++
    this.vcpu.kick()
  }

  /** New pacing holds from the next slice; a slice under way with no time limit is ended now. */
  protected onPacingChanged (): void {
    const paced = this.pacer.dirtyRate > 0 || this.pacer.throttleFraction > 0
    if (paced && this.sliceTimer == null) this.interrupt()
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
      if (this.vcpu.inGuest && performance.now() - this.sliceStartedAt >= PACED_SLICE_MS) this.interrupt()
    }, PACED_SLICE_MS)
    this.sliceTimer.unref()
  }

  protected onLoopEnd (): void {
    this.stopSliceTimer()
  }

  private stopSliceTimer (): void {
    if (this.sliceTimer == null) return
    clearInterval(this.sliceTimer)
    this.sliceTimer = undefined
  }

  /** While someone waits for progress, read the counter now and then: the guest need not exit for it to move. */
  protected onProgressWait (): void {
    if (this.progressPoll != null) return
    this.progressPoll = setInterval(() => {
      if (this.vcpu.inGuest) this.notifyProgress()
      if (!this.waiters.awaitingProgress || this.stopping) {
        clearInterval(this.progressPoll)
        this.progressPoll = undefined
      }
    }, PROGRESS_POLL_MS)
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
