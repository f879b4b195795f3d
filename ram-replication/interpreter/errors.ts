// What stops an interpreted guest for good: the exceptions a user-mode guest without an
// interrupt table cannot handle. On KVM each of them ends in a triple fault (KVM_EXIT_SHUTDOWN);
// here they name the cause, the instruction and the address.

export type X86FaultKind = 'page-fault' | 'divide-error' | 'invalid-opcode'

export class X86Fault extends Error {
  readonly kind: X86FaultKind
  /** RIP of the faulting instruction (faults leave the guest before it). */
  readonly rip: number
  /** The linear address a page fault was about, if any. */
  readonly address?: number

  constructor (kind: X86FaultKind, rip: number, message: string, address?: number) {
    super(`${kind} at RIP 0x${rip.toString(16)}: ${message}`)
    this.name = 'X86Fault'
    this.kind = kind
    this.rip = rip
    this.address = address
  }
}
