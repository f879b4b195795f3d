// The interpreter's CPU to and from the raw kvm_regs/kvm_sregs bytes checkpoints carry, with
// the same koffi layouts KvmGuest uses: an image taken by either engine resumes on the other.
// The interpreter runs only what the page writer runs, so a state outside 64-bit paged mode
// is refused here rather than misread.
import type { VcpuState } from '../checkpoint.ts'
import { decodeRegs, decodeSregs, encodeRegs } from '../kvm/binding.ts'
import type { Cpu } from '../interpreter/index.ts'
import { InvalidGuestImageError } from './errors.ts'

/** kvm_regs field for each x86 register number (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15). */
const REGISTER_FIELDS = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const

const CR0_PG = 0x80000000
const CR4_PAE = 0x20
const EFER_LMA = 0x400

export interface PagingState {
  cr3: number
  /** CPL 3: the code segment's privilege level. */
  user: boolean
}

function toNumber (value: unknown, field: string): number {
  const big = BigInt(value as number | bigint)
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidGuestImageError(`vCPU ${field} 0x${big.toString(16)} is out of the interpreter's range`)
  return Number(big)
}

/** The paging state the MMU needs, from the sregs (refused unless 64-bit paged mode). */
export function pagingState (state: VcpuState): PagingState {
  const sregs = decodeSregs(state.sregs) as { cr0: unknown, cr3: unknown, cr4: unknown, efer: unknown, cs: { l: number, dpl: number } }
  const cr0 = toNumber(sregs.cr0, 'cr0')
  const cr4 = toNumber(sregs.cr4, 'cr4')
  const efer = toNumber(sregs.efer, 'efer')
  if ((cr0 & CR0_PG) === 0 || (cr4 & CR4_PAE) === 0 || (efer & EFER_LMA) === 0 || sregs.cs.l !== 1) {
    throw new InvalidGuestImageError('the interpreter runs 64-bit long-mode guests only (CR0.PG, CR4.PAE, EFER.LMA and CS.L set)')
  }
  return { cr3: toNumber(sregs.cr3, 'cr3'), user: sregs.cs.dpl === 3 }
}

/** Load the general registers, RIP and RFLAGS of `state` into `cpu`. */
export function loadRegisters (cpu: Cpu, state: VcpuState): void {
  const regs = decodeRegs(state.regs)
  REGISTER_FIELDS.forEach((field, index) => {
    const value = BigInt(regs[field])
    cpu.lo[index] = Number(value & 0xffffffffn)
    cpu.hi[index] = Number((value >> 32n) & 0xffffffffn)
  })
  cpu.rip = toNumber(regs.rip, 'rip')
  cpu.rflags = Number(BigInt(regs.rflags) & 0xffffffffn)
}

/** The registers as kvm_regs bytes; the sregs (never changed by the interpreter) travel as they came. */
export function saveVcpuState (cpu: Cpu, sregs: Uint8Array): VcpuState {
  const fields: Record<string, bigint> = {}
  REGISTER_FIELDS.forEach((field, index) => { fields[field] = (BigInt(cpu.hi[index]) << 32n) | BigInt(cpu.lo[index]) })
  fields.rip = BigInt(cpu.rip)
  fields.rflags = BigInt(cpu.rflags)
  return { regs: encodeRegs(fields), sregs: sregs.slice() }
}
