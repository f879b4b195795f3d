// One vCPU: its fd, the `kvm_run` page shared with the kernel, KVM_RUN on a thread of its own
// (vcpu-thread.ts) that a kick can interrupt, and the raw register state a checkpoint carries.
import { constants } from 'node:os'
import {
  KVM_GET_REGS, KVM_GET_SREGS, KVM_REGS_SIZE, KVM_SET_REGS, KVM_SET_SREGS, KVM_SREGS_SIZE,
  KvmRegsOffsets, KvmRunOffsets, closeFd, enableSoftwareBreakpoints, ioctlBytes, munmap, mmapShared, signalThread, viewOf
} from '../kvm/binding.ts'
import type { NativePointer } from '../kvm/binding.ts'
import type { VcpuState } from '../checkpoint.ts'
import { KICK_SIGNAL, VcpuThread } from './vcpu-thread.ts'
import type { VcpuRunResult } from './vcpu-thread.ts'

export class Vcpu {
  readonly fd: number
  private readonly runPointer: NativePointer
  private readonly runSize: number
  private readonly run: DataView
  private thread?: VcpuThread
  private closed = false

  constructor (fd: number, runSize: number) {
    this.fd = fd
    this.runSize = runSize
    this.runPointer = mmapShared(runSize, fd, false)
    this.run = new DataView(viewOf(this.runPointer, runSize))
  }

  /** Start the thread that runs this vCPU (before the first `enter`). */
  async startThread (): Promise<void> {
    this.thread ??= await VcpuThread.acquire(this.fd)
  }

  /** Enter the guest until its next exit or a kick, off the event loop. */
  async enter (): Promise<VcpuRunResult> {
    if (this.thread == null) throw new Error('the vCPU thread was not started')
    // A kick that came after the last exit is spent: this entry is a new decision to run.
    this.run.setUint8(KvmRunOffsets.immediateExit, 0)
    return await this.thread.enter()
  }

  /** Whether the vCPU is in KVM_RUN now. */
  get inGuest (): boolean {
    return this.thread?.inGuest === true
  }

  /**
   * Make the vCPU leave the guest now: an entry about to begin returns at once
   * (`immediate_exit`), one under way is interrupted by the signal. Either way `enter`
   * resolves with EINTR and the vCPU's state is whole.
   */
  kick (): void {
    if (this.thread == null || this.closed) return
    this.run.setUint8(KvmRunOffsets.immediateExit, 1)
    signalThread(this.thread.threadId, constants.signals[KICK_SIGNAL])
  }

  /** Route the guest's `int3` to the VMM (KVM_EXIT_DEBUG) instead of the guest. */
  trapBreakpoints (): void {
    enableSoftwareBreakpoints(this.fd)
  }

  /**
   * After a breakpoint exit, KVM leaves RIP on the `int3`; step over it, as a debugger would,
   * and return the report registers. Done before anything reads the vCPU state, so a saved
   * state always resumes after the report.
   */
  stepOverBreakpoint (): { rax: number, rdx: number } {
    const regs = new Uint8Array(KVM_REGS_SIZE)
    ioctlBytes(this.fd, KVM_GET_REGS, regs, 'KVM_GET_REGS')
    const view = new DataView(regs.buffer)
    view.setBigUint64(KvmRegsOffsets.rip, view.getBigUint64(KvmRegsOffsets.rip, true) + 1n, true)
    ioctlBytes(this.fd, KVM_SET_REGS, regs, 'KVM_SET_REGS')
    return { rax: view.getUint32(KvmRegsOffsets.rax, true), rdx: view.getUint32(KvmRegsOffsets.rdx, true) }
  }

  /** The report registers and RIP as they are (for a breakpoint that already trapped past the `int3`). */
  reportRegisters (): { rax: number, rdx: number, rip: number } {
    const regs = new Uint8Array(KVM_REGS_SIZE)
    ioctlBytes(this.fd, KVM_GET_REGS, regs, 'KVM_GET_REGS')
    const view = new DataView(regs.buffer)
    return { rax: view.getUint32(KvmRegsOffsets.rax, true), rdx: view.getUint32(KvmRegsOffsets.rdx, true), rip: Number(view.getBigUint64(KvmRegsOffsets.rip, true)) }
  }

  get exitReason (): number {
    return this.run.getUint32(KvmRunOffsets.exitReason, true)
  }

  /** A short description of the last exit's details (for fault reports). */
  exitDetail (): string {
    return `hardware/suberror ${this.run.getBigUint64(KvmRunOffsets.failEntryReason, true)}`
  }

  getState (): VcpuState {
    const regs = new Uint8Array(KVM_REGS_SIZE)
    const sregs = new Uint8Array(KVM_SREGS_SIZE)
    ioctlBytes(this.fd, KVM_GET_REGS, regs, 'KVM_GET_REGS')
    ioctlBytes(this.fd, KVM_GET_SREGS, sregs, 'KVM_GET_SREGS')
    return { regs, sregs }
  }

  setState (state: VcpuState): void {
    // Sregs first: the segment and control state the registers are interpreted in.
    ioctlBytes(this.fd, KVM_SET_SREGS, state.sregs.slice(), 'KVM_SET_SREGS')
    ioctlBytes(this.fd, KVM_SET_REGS, state.regs.slice(), 'KVM_SET_REGS')
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.kick()
    this.closed = true
    await this.thread?.close()
    munmap(this.runPointer, this.runSize)
    closeFd(this.fd)
  }
}
