// One vCPU: its fd, the `kvm_run` page shared with the kernel, KVM_RUN on koffi's worker
// thread, and the raw register state that a checkpoint carries.
import {
  KVM_GET_REGS, KVM_GET_SREGS, KVM_REGS_SIZE, KVM_SET_REGS, KVM_SET_SREGS, KVM_SREGS_SIZE,
  KvmRegsOffsets, KvmRunOffsets, closeFd, enableSoftwareBreakpoints, ioctlBytes, kvmRunAsync, munmap, mmapShared, viewOf
} from '../kvm/binding.ts'
import type { NativePointer } from '../kvm/binding.ts'
import type { VcpuState } from '../checkpoint.ts'

export class Vcpu {
  readonly fd: number
  private readonly runPointer: NativePointer
  private readonly runSize: number
  private readonly run: DataView
  private closed = false

  constructor (fd: number, runSize: number) {
    this.fd = fd
    this.runSize = runSize
    this.runPointer = mmapShared(runSize, fd, false)
    this.run = new DataView(viewOf(this.runPointer, runSize))
  }

  /** Enter the guest until its next exit, off the event loop. Resolves with KVM_RUN's result (-1 on error or signal). */
  async enter (): Promise<number> {
    return await kvmRunAsync(this.fd)
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

  close (): void {
    if (this.closed) return
    this.closed = true
    munmap(this.runPointer, this.runSize)
    closeFd(this.fd)
  }
}
