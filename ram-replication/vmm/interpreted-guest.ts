// The page-writer guest on the interpreter: the same guest program, memory layout, page tables,
// checkpoints and controls as KvmGuest, for machines without /dev/kvm.
//
// The interpreter runs on the event loop in turns of about SLICE_MS, yielding between them, so
// a pause or checkpoint stops the guest at the end of the turn under way, at an instruction
// boundary, as a kick does on KVM: a write may be half done (the guest names the page it is
// writing, so the verifier accepts that page torn), and the guest finishes it after a resume
// or a restore elsewhere.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Checkpoint, DirtyPage, VcpuState } from '../checkpoint.ts'
import { KVM_EXIT_SHUTDOWN } from '../kvm/binding.ts'
import { RDX, X86Fault, X86Interpreter } from '../interpreter/index.ts'
import {
  GUEST_PAGE_SIZE, GuestLayout, defaultPageWriterParams, loadPageWriter, readGuestCounter, readPageWriterParams
} from '../guest/page-writer.ts'
import type { PageWriterParams } from '../guest/page-writer.ts'
import { GuestFaultError, GuestStoppedError } from './errors.ts'
import { validateGuestImage, validateMemorySize } from './guest-image.ts'
import { GuestMemory } from './guest-memory.ts'
import { GuestPacer } from './guest-pacer.ts'
import { GuestWaiters } from './guest-waiters.ts'
import { SpareCopyBuffer } from './spare-copy-buffer.ts'
import { copyFullMemory } from './full-copy.ts'
import { loadRegisters, pagingState, saveVcpuState } from './interpreted-vcpu.ts'
import { initialVcpuState, resetSregs } from './long-mode-state.ts'
import { silentLogger } from './running-guest.ts'
import type { CheckpointTiming, GuestCommonOptions, GuestImage, GuestState, GuestStats, RunningGuest, VmmLogger } from './running-guest.ts'

/** Guest RAM when not given: smaller than KVM's default, since the interpreter writes far fewer pages per second. */
export const DEFAULT_INTERPRETED_MEMORY_BYTES = 64 * 1024 * 1024
/** How long one turn of the interpreter holds the event loop. */
const SLICE_MS = 2
/** Instructions between two clock reads (well under a millisecond). */
const CHUNK_INSTRUCTIONS = 20_000
/** Shared by every untouched page of a full checkpoint; never written. */
const ZERO_PAGE = new Uint8Array(GUEST_PAGE_SIZE)

export interface StartInterpretedGuestOptions extends GuestCommonOptions {
  /** Guest RAM in bytes (multiple of 4096; default 64 MiB). */
  memoryBytes?: number
  /** The workload: pattern, rate, sizes. Unset fields take defaults. */
  workload?: Partial<PageWriterParams>
}

export interface RestoreInterpretedGuestOptions extends GuestCommonOptions {
  /** Override the pacing rate stored in the image (pages/s, 0 = unpaced). */
  dirtyRate?: number
}

export interface InterpretedGuestStats extends GuestStats {
  /** Guest instructions executed. */
  instructions: number
}

export class InterpretedGuest implements RunningGuest {
  readonly engine = 'interpreted' as const
  readonly vmId: string
  readonly memoryBytes: number
  readonly pageSize = GUEST_PAGE_SIZE
  private readonly guestMemory: GuestMemory
  private readonly interpreter: X86Interpreter
  /** The segment and control registers: the interpreter never changes them, so checkpoints carry them as loaded. */
  private readonly sregs: Uint8Array
  private readonly pacer: GuestPacer
  private readonly logger: VmmLogger
  private readonly waiters = new GuestWaiters()
  private readonly spare = new SpareCopyBuffer()
  private readonly loopDone: Promise<void>
  private userPaused: boolean
  private holds = 0
  private halted = false
  private stopping = false
  private stopped = false
  private failure?: Error
  private parked = false
  private counterAtLastReport: number
  /** When the guest started running towards its next report, and for how long it has run since (pacing). */
  private segmentStartedAt?: number
  private segmentMs = 0
  private turns = 0
  private progressExits = 0
  private lastCheckpoint?: CheckpointTiming
  private wakeLoop?: () => void
  private captureChain: Promise<unknown> = Promise.resolve()

  private constructor (memory: GuestMemory, vcpu: VcpuState, options: GuestCommonOptions & { dirtyRate: number }) {
    this.vmId = options.vmId ?? randomUUID()
    this.memoryBytes = memory.size
    this.guestMemory = memory
    this.sregs = vcpu.sregs.slice()
    this.interpreter = new X86Interpreter(memory.bytes, pagingState(vcpu))
    loadRegisters(this.interpreter.cpu, vcpu)
    this.pacer = new GuestPacer(options.dirtyRate)
    this.logger = options.logger ?? silentLogger
    this.userPaused = options.paused === true
    this.counterAtLastReport = readGuestCounter(memory.bytes)
    this.loopDone = this.runLoop()
  }

  /** Load the page-writer guest and its parameters into fresh memory and start it. */
  static async start (options: StartInterpretedGuestOptions = {}): Promise<InterpretedGuest> {
    const memoryBytes = options.memoryBytes ?? DEFAULT_INTERPRETED_MEMORY_BYTES
    validateMemorySize(memoryBytes)
    const params = defaultPageWriterParams(memoryBytes, options.workload)
    const memory = GuestMemory.allocate(memoryBytes)
    try {
      loadPageWriter(memory.bytes, params)
      const vcpu = initialVcpuState({ regs: new Uint8Array(0), sregs: resetSregs() })
      return new InterpretedGuest(memory, vcpu, { ...options, dirtyRate: params.dirtyRate })
    } catch (error) {
      memory.release()
      throw error
    }
  }

  /**
   * Resume from a memory image and vCPU state (taken by either engine). Memory from
   * `allocateGuestMemory` is adopted without a copy; any other memory is copied.
   */
  static async restore (image: GuestImage, options: RestoreInterpretedGuestOptions = {}): Promise<InterpretedGuest> {
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
      return new InterpretedGuest(memory, image.vcpu, { ...options, vmId: options.vmId ?? image.vmId, dirtyRate: options.dirtyRate ?? params.dirtyRate })
    } catch (error) {
      if (copied) memory.release()
      throw error
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

  get error (): Error | undefined {
    return this.failure
  }

  guestCounter (): number {
    if (this.guestMemory.isReleased) return this.counterAtLastReport
    return readGuestCounter(this.guestMemory.bytes)
  }

  memory (): Uint8Array {
    return this.guestMemory.bytes
  }

  stats (): InterpretedGuestStats {
    return {
      engine: this.engine,
      state: this.state,
      guestCounter: this.guestCounter(),
      exits: this.turns,
      progressExits: this.progressExits,
      dirtyRate: this.pacer.dirtyRate,
      throttle: this.pacer.throttleFraction,
      instructions: this.interpreter.instructions,
      lastCheckpoint: this.lastCheckpoint
    }
  }

  setThrottle (fraction: number): void {
    this.pacer.setThrottle(fraction)
    this.wake()
  }

  setDirtyRate (pagesPerSecond: number): void {
    this.pacer.setRate(pagesPerSecond)
    this.pacer.restart(performance.now())
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

  async waitForCounter (target: number, options: { signal?: AbortSignal } = {}): Promise<number> {
    await this.waitForProgress(() => this.guestCounter() >= target, options.signal, `counter ${target}`)
    return this.guestCounter()
  }

  async waitUntilHalted (options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.waitForProgress(() => this.halted, options.signal, 'halt')
  }

  async checkpoint (epoch: number, options: { signal?: AbortSignal } = {}): Promise<Checkpoint> {
    return await this.exclusive(async () => await this.capture(epoch, false, options.signal))
  }

  async fullCheckpoint (epoch: number, options: { signal?: AbortSignal } = {}): Promise<Checkpoint> {
    return await this.exclusive(async () => await this.capture(epoch, true, options.signal))
  }

  /** Stop the guest for good and free its memory. */
  async stop (): Promise<void> {
    if (this.stopping) {
      await this.loopDone
      return
    }
    this.stopping = true
    this.spare.close()
    this.wake()
    await this.loopDone
    await this.captureChain.catch(() => {})
    this.stopped = true
    if (!this.guestMemory.isReleased) this.counterAtLastReport = readGuestCounter(this.guestMemory.bytes)
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
      const indices = this.interpreter.dirtyLog.collect()
      const collectedAt = performance.now()
      const memory = this.guestMemory.bytes
      const pages = full
        ? await copyFullMemory(memory, this.guestMemory.residency(), GUEST_PAGE_SIZE, ZERO_PAGE)
        : this.copyPages(memory, indices, this.spare.take(indices.length * GUEST_PAGE_SIZE))
      const copiedAt = performance.now()
      const vcpu = saveVcpuState(this.interpreter.cpu, this.sregs)
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

  private copyPages (memory: Uint8Array, indices: number[], copy = new Uint8Array(indices.length * GUEST_PAGE_SIZE)): DirtyPage[] {
    return indices.map((index, i) => {
      const data = copy.subarray(i * GUEST_PAGE_SIZE, (i + 1) * GUEST_PAGE_SIZE)
      data.set(memory.subarray(index * GUEST_PAGE_SIZE, (index + 1) * GUEST_PAGE_SIZE))
      return { index, data }
    })
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
        this.parked = false
        const startAt = this.pacer.startAt()
        if (startAt - performance.now() >= 1) {
          await this.idle(startAt)
          continue
        }
        this.runTurn()
        await yieldTurn()
      }
    } catch (error) {
      this.failure = error instanceof X86Fault
        ? new GuestFaultError(KVM_EXIT_SHUTDOWN, `guest fault: ${error.message}`)
        : error instanceof Error ? error : new Error(String(error))
      this.logger.error('interpreted guest %s failed: %s', this.vmId, this.failure.message)
    }
    if (!this.stopping) await this.park()
    this.parked = true
    this.waiters.parked()
  }

  /** Run the guest for one turn (SLICE_MS), or until a report after which it may not go on. */
  private runTurn (): void {
    try {
      this.runChunks()
    } finally {
      // Waiters on the counter see progress between reports too (a guest may report rarely).
      this.notifyProgress()
    }
  }

  private runChunks (): void {
    this.turns++
    const turnStartedAt = performance.now()
    let chunkStartedAt = turnStartedAt
    this.segmentStartedAt ??= turnStartedAt
    for (;;) {
      const result = this.interpreter.run(CHUNK_INSTRUCTIONS)
      const now = performance.now()
      this.segmentMs += now - chunkStartedAt
      chunkStartedAt = now
      if (result.breakpoint) {
        this.report(now)
        if (!this.mayRun() || this.pacer.startAt() - now >= 1) return
      }
      if (now - turnStartedAt >= SLICE_MS) {
        // The end of a turn counts as the end of a paced slice, as a kick on KVM does: a guest
        // that reports rarely or never is still held to its rate and throttle.
        this.accountSegment(now)
        return
      }
    }
  }

  /** The guest reported (`int3`, RIP already past it): account for the batch, pace, wake waiters. */
  private report (now: number): void {
    const kind = this.interpreter.cpu.lo[RDX]
    if (kind === GuestLayout.reportDone) this.halted = true
    else if (kind !== GuestLayout.reportProgress) throw new GuestFaultError(KVM_EXIT_SHUTDOWN, `guest made an unknown report ${kind}`)
    this.progressExits++
    this.accountSegment(now)
  }

  /** Account for the pages written since the last account (pacing). */
  private accountSegment (now: number): void {
    const counter = readGuestCounter(this.guestMemory.bytes)
    this.pacer.record(this.segmentStartedAt ?? now, this.segmentMs, counter - this.counterAtLastReport)
    this.counterAtLastReport = counter
    this.segmentStartedAt = undefined
    this.segmentMs = 0
    this.notifyProgress()
  }

  /** Stop (at an instruction boundary) until the guest may run again. */
  private async park (): Promise<void> {
    this.parked = true
    this.segmentStartedAt = undefined
    this.segmentMs = 0
    this.waiters.parked()
    if (this.halted || this.failure != null) this.notifyProgress()
    if (!this.stopping && !this.mayRun()) await this.idle()
  }

  private async whenParked (signal?: AbortSignal): Promise<void> {
    if (this.parked && !this.mayRun()) return
    if (this.stopped) return
    this.wake()
    await this.waiters.untilParked(signal)
  }

  private async waitForProgress (check: () => boolean, signal: AbortSignal | undefined, what: string): Promise<void> {
    signal?.throwIfAborted()
    if (check()) return
    if (this.stopping) throw new GuestStoppedError(`guest ${this.vmId} stopped before ${what}`)
    await this.waiters.until(check, signal)
  }

  private notifyProgress (): void {
    this.waiters.progress(() => {
      if (this.failure != null) return this.failure
      if (this.halted) return new GuestStoppedError(`guest ${this.vmId} halted at counter ${this.guestCounter()}`)
      return undefined
    })
  }
}

async function yieldTurn (): Promise<void> {
  await new Promise<void>(resolve => setImmediate(resolve))
}

/** Start the page-writer guest on the interpreter (the daemon's `vm run --engine interpreted`). */
export async function startInterpretedGuest (options: StartInterpretedGuestOptions = {}): Promise<InterpretedGuest> {
  return await InterpretedGuest.start(options)
}

/** A restorer for a backup whose VM ran on the interpreter (see kvmGuestRestorer). */
export function interpretedGuestRestorer (defaults: RestoreInterpretedGuestOptions = {}): (image: GuestImage, options?: { signal?: AbortSignal }) => Promise<InterpretedGuest> {
  return async (image, options = {}) => {
    options.signal?.throwIfAborted()
    return await InterpretedGuest.restore(image, defaults)
  }
}
