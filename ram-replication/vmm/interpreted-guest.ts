// The page-writer guest on the interpreter: the same guest program, memory layout, page tables,
// checkpoints and controls (PageWriterGuest, page-writer-guest.ts) as KvmGuest, for machines
// without /dev/kvm. This file is the engine's half: the run slice and the vCPU's state.
//
// The interpreter runs on the event loop in turns of about SLICE_MS, yielding between them, so
// a pause or checkpoint stops the guest at the end of the turn under way, at an instruction
// boundary, as a kick does on KVM: a write may be half done (the guest names the page it is
// writing, so the verifier accepts that page torn), and the guest finishes it after a resume
// or a restore elsewhere.
import type { VcpuState } from '../checkpoint.ts'
import { KVM_EXIT_SHUTDOWN } from '../kvm/binding.ts'
import { RDX, X86Fault, X86Interpreter } from '../interpreter/index.ts'
import { GuestLayout, defaultPageWriterParams, loadPageWriter, readPageWriterParams } from '../guest/page-writer.ts'
import type { PageWriterParams } from '../guest/page-writer.ts'
import { GuestFaultError } from './errors.ts'
import { validateGuestImage, validateMemorySize } from './guest-image.ts'
import { GuestMemory } from './guest-memory.ts'
import { loadRegisters, pagingState, saveVcpuState } from './interpreted-vcpu.ts'
import { initialVcpuState, resetSregs } from './long-mode-state.ts'
import { PageWriterGuest } from './page-writer-guest.ts'
import type { GuestCommonOptions, GuestImage, GuestStats } from './running-guest.ts'

/** Guest RAM when not given: smaller than KVM's default, since the interpreter writes far fewer pages per second. */
export const DEFAULT_INTERPRETED_MEMORY_BYTES = 64 * 1024 * 1024
/** How long one turn of the interpreter holds the event loop. */
const SLICE_MS = 2
/** Instructions between two clock reads (well under a millisecond). */
const CHUNK_INSTRUCTIONS = 20_000

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

export class InterpretedGuest extends PageWriterGuest {
  readonly engine = 'interpreted' as const
  private readonly interpreter: X86Interpreter
  /** The segment and control registers: the interpreter never changes them, so checkpoints carry them as loaded. */
  private readonly sregs: Uint8Array
  /** When the guest started running towards its next account, and for how long it has run since (pacing). */
  private segmentStartedAt?: number
  private segmentMs = 0
  private turns = 0

  private constructor (memory: GuestMemory, vcpu: VcpuState, options: GuestCommonOptions & { dirtyRate: number }) {
    super(memory, options)
    this.sregs = vcpu.sregs.slice()
    this.interpreter = new X86Interpreter(memory.bytes, pagingState(vcpu))
    loadRegisters(this.interpreter.cpu, vcpu)
    this.startLoop()
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

  protected collectDirty (): number[] {
    return this.interpreter.dirtyLog.collect()
  }

  protected saveVcpu (): VcpuState {
    return saveVcpuState(this.interpreter.cpu, this.sregs)
  }

  protected async releaseEngine (): Promise<void> {}

  protected faultOf (error: unknown): Error {
    return error instanceof X86Fault ? new GuestFaultError(KVM_EXIT_SHUTDOWN, `guest fault: ${error.message}`) : super.faultOf(error)
  }

  protected onParked (): void {
    this.segmentStartedAt = undefined
    this.segmentMs = 0
  }

  /** One turn (SLICE_MS, or until a report after which the guest may not go on), then the event loop's turn. */
  protected async runSlice (): Promise<void> {
    try {
      this.runChunks()
    } finally {
      // Waiters on the counter see progress between reports too (a guest may report rarely).
      this.notifyProgress()
    }
    await yieldTurn()
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
    this.account(this.segmentStartedAt ?? now, this.segmentMs)
    this.segmentStartedAt = undefined
    this.segmentMs = 0
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
