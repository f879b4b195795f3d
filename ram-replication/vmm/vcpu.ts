// One vCPU: its fd, the `kvm_run` page shared with the kernel, KVM_RUN on koffi's worker
// thread, and the raw register state that a checkpoint carries.
import {
  KVM_EXIT_INTR, KVM_GET_REGS, KVM_GET_SREGS, KVM_REGS_SIZE, KVM_SET_REGS, KVM_SET_SREGS, KVM_SREGS_SIZE,
  KvmRunOffsets, closeFd, ioctlBytes, kvmRunAsync, munmap, mmapShared, viewOf
} from '../kvm/binding.ts'
import type { NativePointer } from '../kvm/binding.ts'
import type { VcpuState } from '../checkpoint.ts'

export interface IoExit {
  out: boolean
  size: number
  port: number
  count: number
  /** The first value carried (size bytes, little-endian). */
  value: number
}

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

  /**
   * Re-enter with `immediate_exit` set: KVM finishes the pending port I/O (the `out` the guest
   * exited on is only complete, RIP past it, after the next KVM_RUN) and returns at once without
   * running a guest instruction. Needed before the registers are saved. Done on the worker
   * thread like every KVM_RUN, so the vCPU's thread does not change between runs.
   */
  async completePendingIo (): Promise<void> {
    this.run.setUint8(KvmRunOffsets.immediateExit, 1)
    try {
      await kvmRunAsync(this.fd)
    } finally {
      this.run.setUint8(KvmRunOffsets.immediateExit, 0)
    }
  }

  get exitReason (): number {
    return this.run.getUint32(KvmRunOffsets.exitReason, true)
  }

  get interrupted (): boolean {
    return this.exitReason === KVM_EXIT_INTR
  }

  io (): IoExit {
    const size = this.run.getUint8(KvmRunOffsets.ioSize)
    const dataOffset = Number(this.run.getBigUint64(KvmRunOffsets.ioDataOffset, true))
    let value = 0
    if (dataOffset + size <= this.runSize) {
      value = size === 4 ? this.run.getUint32(dataOffset, true) : size === 2 ? this.run.getUint16(dataOffset, true) : this.run.getUint8(dataOffset)
    }
    return {
      out: this.run.getUint8(KvmRunOffsets.ioDirection) === 1,
      size,
      port: this.run.getUint16(KvmRunOffsets.ioPort, true),
      count: this.run.getUint32(KvmRunOffsets.ioCount, true),
      value
    }
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
