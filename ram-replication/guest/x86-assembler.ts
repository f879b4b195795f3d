// A tiny x86 encoder: just the 32-bit-operand instructions the guest workload uses, with labels
// for jumps. Every encoding chosen here means the same in 32-bit protected mode and in 64-bit
// long mode (absolute addresses through a SIB byte, not the ModRM form that long mode reads as
// RIP-relative; inc/dec through FF /0 and FF /1, not 40+r and 48+r, which are REX prefixes
// there). Each method emits the documented encoding (Intel SDM vol. 2).

export const EAX = 0
export const ECX = 1
export const EDX = 2
export const EBX = 3
export const ESP = 4
export const EBP = 5
export const ESI = 6
export const EDI = 7
export type Reg32 = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7

type Condition = 'e' | 'ne' | 'b' | 'ae' | 'be' | 'a'
const CONDITION_CODES: Record<Condition, number> = { b: 0x2, ae: 0x3, e: 0x4, ne: 0x5, be: 0x6, a: 0x7 }

export class X86Assembler {
  private readonly bytes: number[] = []
  private readonly labels = new Map<string, number>()
  private readonly fixups: Array<{ at: number, label: string }> = []

  get position (): number {
    return this.bytes.length
  }

  label (name: string): this {
    if (this.labels.has(name)) throw new Error(`label ${name} defined twice`)
    this.labels.set(name, this.bytes.length)
    return this
  }

  private byte (...values: number[]): void {
    for (const value of values) this.bytes.push(value & 0xff)
  }

  private dword (value: number): void {
    this.byte(value, value >>> 8, value >>> 16, value >>> 24)
  }

  private modrm (mod: number, reg: number, rm: number): void {
    this.byte((mod << 6) | (reg << 3) | rm)
  }

  /** [disp32] absolute (SIB with no base and no index), or [base + disp32]. ESP as base needs a SIB byte. */
  private memoryOperand (reg: number, base: Reg32 | undefined, disp: number): void {
    if (base == null) {
      this.modrm(0b00, reg, 0b100)
      this.byte(0x25)
    } else {
      this.modrm(0b10, reg, base)
      if (base === ESP) this.byte(0x24)
    }
    this.dword(disp)
  }

  /** mov r32, imm32 */
  movImm (dst: Reg32, imm: number): this {
    this.byte(0xb8 + dst)
    this.dword(imm)
    return this
  }

  /** mov r32, r32 */
  mov (dst: Reg32, src: Reg32): this {
    this.byte(0x89)
    this.modrm(0b11, src, dst)
    return this
  }

  /** mov r32, [base + disp] (or [disp] without base) */
  load (dst: Reg32, disp: number, base?: Reg32): this {
    this.byte(0x8b)
    this.memoryOperand(dst, base, disp)
    return this
  }

  /** mov [base + disp], r32 (or [disp] without base) */
  store (disp: number, src: Reg32, base?: Reg32): this {
    this.byte(0x89)
    this.memoryOperand(src, base, disp)
    return this
  }

  /** mov [base + index*4], r32 */
  storeIndexed4 (base: Reg32, index: Reg32, src: Reg32): this {
    if (index === ESP || base === EBP) throw new Error('storeIndexed4: unsupported registers')
    this.byte(0x89)
    this.modrm(0b00, src, 0b100)
    this.byte((0b10 << 6) | (index << 3) | base)
    return this
  }

  private aluRegReg (opcode: number, dst: Reg32, src: Reg32): this {
    this.byte(opcode)
    this.modrm(0b11, src, dst)
    return this
  }

  add (dst: Reg32, src: Reg32): this { return this.aluRegReg(0x01, dst, src) }
  sub (dst: Reg32, src: Reg32): this { return this.aluRegReg(0x29, dst, src) }
  xor (dst: Reg32, src: Reg32): this { return this.aluRegReg(0x31, dst, src) }
  /** Flags from dst - src. */
  cmp (dst: Reg32, src: Reg32): this { return this.aluRegReg(0x39, dst, src) }

  private aluImm (extension: number, dst: Reg32, imm: number): this {
    this.byte(0x81)
    this.modrm(0b11, extension, dst)
    this.dword(imm)
    return this
  }

  addImm (dst: Reg32, imm: number): this { return this.aluImm(0, dst, imm) }
  adcImm (dst: Reg32, imm: number): this { return this.aluImm(2, dst, imm) }
  andImm (dst: Reg32, imm: number): this { return this.aluImm(4, dst, imm) }
  xorImm (dst: Reg32, imm: number): this { return this.aluImm(6, dst, imm) }
  cmpImm (dst: Reg32, imm: number): this { return this.aluImm(7, dst, imm) }

  /** imul dst, src, imm32 */
  imulImm (dst: Reg32, src: Reg32, imm: number): this {
    this.byte(0x69)
    this.modrm(0b11, dst, src)
    this.dword(imm)
    return this
  }

  shl (dst: Reg32, count: number): this {
    this.byte(0xc1)
    this.modrm(0b11, 4, dst)
    this.byte(count)
    return this
  }

  shr (dst: Reg32, count: number): this {
    this.byte(0xc1)
    this.modrm(0b11, 5, dst)
    this.byte(count)
    return this
  }

  inc (dst: Reg32): this {
    this.byte(0xff)
    this.modrm(0b11, 0, dst)
    return this
  }

  dec (dst: Reg32): this {
    this.byte(0xff)
    this.modrm(0b11, 1, dst)
    return this
  }

  /** div r32: edx:eax / r32 → eax quotient, edx remainder. */
  div (src: Reg32): this {
    this.byte(0xf7)
    this.modrm(0b11, 6, src)
    return this
  }

  /** Breakpoint trap (the guest's report to the VMM). */
  int3 (): this {
    this.byte(0xcc)
    return this
  }

  jmp (label: string): this {
    this.byte(0xe9)
    this.fixups.push({ at: this.bytes.length, label })
    this.dword(0)
    return this
  }

  jcc (condition: Condition, label: string): this {
    this.byte(0x0f, 0x80 + CONDITION_CODES[condition])
    this.fixups.push({ at: this.bytes.length, label })
    this.dword(0)
    return this
  }

  /** The machine code, with every jump resolved (rel32 from the end of the jump). */
  assemble (): Uint8Array {
    const code = Uint8Array.from(this.bytes)
    const view = new DataView(code.buffer)
    for (const { at, label } of this.fixups) {
      const target = this.labels.get(label)
      if (target == null) throw new Error(`undefined label ${label}`)
      view.setInt32(at, target - (at + 4), true)
    }
    return code
  }
}
