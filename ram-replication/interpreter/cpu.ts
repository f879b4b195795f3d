// The architectural state the interpreter keeps: the sixteen general registers as 32-bit halves
// (every instruction it runs has a 32-bit operand, so a result clears the high half, as on
// hardware), RIP, and the four arithmetic flags the conditional jumps read. The other RFLAGS
// bits are carried through unchanged so a state taken from KVM goes back to KVM as it came.

/** Register numbers as x86 encodes them (ModRM reg/rm, +r opcodes). */
export const RAX = 0
export const RCX = 1
export const RDX = 2
export const RBX = 3
export const RSP = 4
export const RBP = 5
export const RSI = 6
export const RDI = 7

export const FLAG_CF = 1 << 0
export const FLAG_ZF = 1 << 6
export const FLAG_SF = 1 << 7
export const FLAG_OF = 1 << 11
const ARITHMETIC_FLAGS = FLAG_CF | FLAG_ZF | FLAG_SF | FLAG_OF

export class Cpu {
  /** Low and high 32 bits of RAX..R15, indexed by register number. */
  readonly lo = new Uint32Array(16)
  readonly hi = new Uint32Array(16)
  rip = 0
  cf = 0
  zf = 0
  sf = 0
  of = 0
  /** RFLAGS bits other than CF/ZF/SF/OF (IF, reserved bit 1, PF, AF…), kept as they were. */
  otherFlags = 0x202

  /** A register's full 64-bit value (the high half is only non-zero in a state restored from elsewhere). */
  reg64 (index: number): number {
    return this.hi[index] * 0x100000000 + this.lo[index]
  }

  get rflags (): number {
    return (this.otherFlags & ~ARITHMETIC_FLAGS) | (this.cf * FLAG_CF) | (this.zf * FLAG_ZF) | (this.sf * FLAG_SF) | (this.of * FLAG_OF)
  }

  set rflags (value: number) {
    this.otherFlags = value & ~ARITHMETIC_FLAGS
    this.cf = (value & FLAG_CF) !== 0 ? 1 : 0
    this.zf = (value & FLAG_ZF) !== 0 ? 1 : 0
    this.sf = (value & FLAG_SF) !== 0 ? 1 : 0
    this.of = (value & FLAG_OF) !== 0 ? 1 : 0
  }

  /** A 32-bit destination: the high half is cleared (zero extension into the 64-bit register). */
  set32 (index: number, value: number): void {
    this.lo[index] = value
    this.hi[index] = 0
  }
}
