// What both engines share: the page-writer guest's controls (pause, throttle, pacing,
// checkpoints, waiting for progress, stop) around one loop of run slices. An engine supplies only
// how a slice runs, how a slice under way is cut short, and how the dirty pages and the vCPU are
// read; KvmGuest (kvm-guest.ts) and InterpretedGuest (interpreted-guest.ts) are those two halves.
//
// The loop: while the guest may run (not paused, not held by a checkpoint, not fully throttled,
// not halted or failed) it runs a slice, or waits first when the pacer says so; otherwise it
// parks, and everyone waiting for a stopped vCPU (pause, checkpoint) is told. A stop request cuts
// the slice under way short, so a guest stops at once whatever it is doing.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Checkpoint, DirtyPage, VcpuState } from '../checkpoint.ts'
import { GUEST_PAGE_SIZE, readGuestCounter } from '../guest/page-writer.ts'
import { GuestStoppedError } from './errors.ts'
import { copyFullMemory } from './full-copy.ts'
import type { GuestMemory } from './guest-memory.ts'
import { GuestPacer } from './guest-pacer.ts'
import { GuestWaiters } from './guest-waiters.ts'
import { silentLogger } from './running-guest.ts'
import type { CheckpointTiming, GuestCommonOptions, GuestEngine, GuestState, GuestStats, RunningGuest, VmmLogger } from './running-guest.ts'
import { SpareCopyBuffer } from './spare-copy-buffer.ts'

/** Shared by every untouched page of a full checkpoint; never written. */
const ZERO_PAGE = new Uint8Array(GUEST_PAGE_SIZE)

export abstract class PageWriterGuest implements RunningGuest {
  abstract readonly engine: GuestEngine
  readonly vmId: string
  readonly memoryBytes: number
  readonly pageSize = GUEST_PAGE_SIZE
  protected readonly guestMemory: GuestMemory
  protected readonly pacer: GuestPacer
  protected readonly logger: VmmLogger
  protected readonly waiters = new GuestWaiters()
  protected halted = false
  protected stopping = false
  protected progressExits = 0
  protected lastCheckpoint?: CheckpointTiming
  private readonly spare = new SpareCopyBuffer()
  private loopDone: Promise<void> = Promise.resolve()
  private userPaused: boolean
  private holds = 0
  private stopped = false
  private failure?: Error
  private parked = false
  /** The counter when the guest's writes were last accounted for (pacing); also its value once the memory is gone. */
  private counterAtLastAccount: number
  private wakeLoop?: () => void
  private captureChain: Promise<unknown> = Promise.resolve()

  protected constructor (memory: GuestMemory, options: GuestCommonOptions & { dirtyRate: number }) {
    this.vmId = options.vmId ?? randomUUID()
    this.memoryBytes = memory.size
    this.guestMemory = memory
    this.pacer = new GuestPacer(options.dirtyRate)
    this.logger = options.logger ?? silentLogger
    this.userPaused = options.paused === true
    this.counterAtLastAccount = readGuestCounter(memory.bytes)
  }

  /** Run the guest once, until it reports, is cut short, or its slice ends. Throws on a fault. */
  protected abstract runSlice (): Promise<void>
  /** The pages written since the last call (clearing the log). */
  protected abstract collectDirty (): number[]
  /** The vCPU's registers, as a checkpoint carries them. */
  protected abstract saveVcpu (): VcpuState
  /** Free what the engine holds (the guest's memory is released after). */
  protected abstract releaseEngine (): Promise<void>
  abstract stats (): GuestStats

  /** Cut the slice under way short (KVM: kick the vCPU). The interpreter's slices end by themselves within a turn. */
  protected interrupt (): void {}
  /** The failure to report for an error out of `runSlice`. */
  protected faultOf (error: unknown): Error {
    return error instanceof Error ? error : new Error(String(error))
  }

  /** Hooks: the loop parked; pacing changed; someone started waiting for progress; the loop ended. */
  protected onParked (): void {}
  protected onPacingChanged (): void {}
  protected onProgressWait (): void {}
  protected onLoopEnd (): void {}

  /** Subclasses call this once their engine is ready. */
  protected startLoop (): void {
    this.loopDone = this.runLoop()
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
    if (this.guestMemory.isReleased) return this.counterAtLastAccount
    return readGuestCounter(this.guestMemory.bytes)
  }

  memory (): Uint8Array {
    return this.guestMemory.bytes
  }

  setThrottle (fraction: number): void {
    this.pacer.setThrottle(fraction)
    this.onPacingChanged()
    this.wake()
  }

  /** Pages per second the guest is paced to (0 = as fast as it runs). */
  setDirtyRate (pagesPerSecond: number): void {
    this.pacer.setRate(pagesPerSecond)
    this.pacer.restart(performance.now())
    this.onPacingChanged()
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

  /** Stop the guest for good and free it and its memory. */
  async stop (): Promise<void> {
    if (this.stopping) {
      await this.loopDone
      return
    }
    this.stopping = true
    this.spare.close()
    this.interrupt()
    this.wake()
    await this.loopDone
    await this.captureChain.catch(() => {})
    this.stopped = true
    if (!this.guestMemory.isReleased) this.counterAtLastAccount = readGuestCounter(this.guestMemory.bytes)
    await this.releaseEngine()
    this.guestMemory.release()
    this.waiters.close(new GuestStoppedError(`guest ${this.vmId} stopped`))
  }

  /** Account for the pages written since the last account (pacing), and tell those waiting for progress. */
  protected account (startedAt: number, runMs: number): void {
    const counter = readGuestCounter(this.guestMemory.bytes)
    this.pacer.record(startedAt, runMs, counter - this.counterAtLastAccount)
    this.counterAtLastAccount = counter
    this.notifyProgress()
  }

  protected mayRun (): boolean {
    return !this.stopping && !this.userPaused && this.holds === 0 && this.pacer.throttleFraction < 1 && !this.halted && this.failure == null
  }

  /** Settle the waiters whose condition holds now; reject the rest once the guest failed or halted. */
  protected notifyProgress (): void {
    this.waiters.progress(() => {
      if (this.failure != null) return this.failure
      if (this.halted) return new GuestStoppedError(`guest ${this.vmId} halted at counter ${this.guestCounter()}`)
      return undefined
    })
  }

  protected wake (): void {
    const wake = this.wakeLoop
    this.wakeLoop = undefined
    wake?.()
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
      const indices = this.collectDirty()
      const collectedAt = performance.now()
      const memory = this.guestMemory.bytes
      const pages = full
        ? await copyFullMemory(memory, this.guestMemory.residency(), GUEST_PAGE_SIZE, ZERO_PAGE)
        : this.copyPages(memory, indices)
      const copiedAt = performance.now()
      const vcpu = this.saveVcpu()
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

  /** The dirty pages, copied into one spare buffer (prepared after the last epoch, off the pause). */
  private copyPages (memory: Uint8Array, indices: number[]): DirtyPage[] {
    const copy = this.spare.take(indices.length * GUEST_PAGE_SIZE)
    const pages = new Array<DirtyPage>(indices.length)
    for (let i = 0; i < indices.length; i++) {
      const offset = indices[i] * GUEST_PAGE_SIZE
      const data = copy.subarray(i * GUEST_PAGE_SIZE, (i + 1) * GUEST_PAGE_SIZE)
      data.set(memory.subarray(offset, offset + GUEST_PAGE_SIZE))
      pages[i] = { index: indices[i], data }
    }
    return pages
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
        // The pacer's bounded catch-up already keeps a guest from bursting after a pause.
        const startAt = this.pacer.startAt()
        if (startAt - performance.now() >= 1) {
          await this.idle(startAt)
          continue
        }
        await this.runSlice()
      }
    } catch (error) {
      this.failure = this.faultOf(error)
      this.logger.error('%s guest %s failed: %s', this.engine, this.vmId, this.failure.message)
    }
    this.onLoopEnd()
    if (!this.stopping) await this.park()
    this.parked = true
    this.waiters.parked()
  }

  /** Stop (the vCPU is out of the guest, at an instruction boundary) until the guest may run again. */
  private async park (): Promise<void> {
    this.parked = true
    this.onParked()
    this.waiters.parked()
    if (this.halted || this.failure != null) this.notifyProgress()
    if (!this.stopping && !this.mayRun()) await this.idle()
  }

  private async whenParked (signal?: AbortSignal): Promise<void> {
    if (this.parked && !this.mayRun()) return
    if (this.stopped) return
    this.interrupt()
    this.wake()
    await this.waiters.untilParked(signal)
  }

  private async waitForProgress (check: () => boolean, signal: AbortSignal | undefined, what: string): Promise<void> {
    signal?.throwIfAborted()
    if (check()) return
    if (this.stopping) throw new GuestStoppedError(`guest ${this.vmId} stopped before ${what}`)
    const waiting = this.waiters.until(check, signal)
    this.onProgressWait()
    await waiting
  }
}
