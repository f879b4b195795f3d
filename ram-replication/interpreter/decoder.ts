// Decodes one instruction at a time into a closure that executes it. The set is exactly what
// guest/x86-assembler.ts emits (no prefixes, 32-bit operands, 64-bit addressing), plus the other
// conditions and extensions of the same opcodes where they cost one line. Anything else is an
// invalid-opcode fault naming the bytes and RIP, as a guest running it on KVM would fault.
//
// A closure leaves the CPU state untouched when it faults (every memory access comes before any
// register or RIP update), so a fault stops the guest on the faulting instruction.
import type { Cpu } from './cpu.ts'
import { X86Fault } from './errors.ts'
import type { Mmu } from './mmu.ts'

/** Executes one decoded instruction. Returns true when the guest reports (`int3`): the run stops there. */
export type Op = () => boolean

export interface Decoded {
  op: Op
  length: number
}

interface ModRm {
  mod: number
  reg: number
  rm: number
  /** For memory operands: the effective address (64-bit, as a number). */
  address?: () => number
}

export class Decoder {
  private readonly cpu: Cpu
  private readonly mmu: Mmu

  constructor (cpu: Cpu, mmu: Mmu) {
    this.cpu = cpu
    this.mmu = mmu
  }

  decode (rip: number): Decoded {
    let at = rip
    const byte = (): number => this.mmu.fetchByte(at++)
    const imm32 = (): number => { const b0 = byte(); const b1 = byte(); const b2 = byte(); const b3 = byte(); return (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0 }
    const imm8s = (): number => (byte() << 24) >> 24
    const unsupported = (what: string): never => {
      const bytes: string[] = []
      for (let i = rip; i < at; i++) bytes.push(this.mmu.fetchByte(i).toString(16).padStart(2, '0'))
      throw new X86Fault('invalid-opcode', rip, `${what} (bytes ${bytes.join(' ')})`)
    }
    const cpu = this.cpu
    const r = cpu.lo
    const mmu = this.mmu

    const modrm = (): ModRm => {
      const value = byte()
      const mod = value >>> 6
      const reg = (value >>> 3) & 7
      const rm = value & 7
      if (mod === 3) return { mod, reg, rm }
      let base = -1
      let index = -1
      let scale = 1
      let disp = 0
      let ripRelative = false
      if (rm === 4) {
        const sib = byte()
        scale = 1 << (sib >>> 6)
        index = (sib >>> 3) & 7
        if (index === 4) index = -1
        base = sib & 7
        if (base === 5 && mod === 0) { base = -1; disp = imm32() | 0 }
      } else if (rm === 5 && mod === 0) {
        ripRelative = true
        disp = imm32() | 0
      } else {
        base = rm
      }
      if (mod === 1) disp = imm8s()
      else if (mod === 2) disp = imm32() | 0
      let address: () => number
      if (ripRelative) {
        // Relative to the end of the whole instruction: `at` holds it once decoding finished.
        const d = disp
        address = () => at + d
      } else if (base >= 0 && index >= 0) {
        const b = base; const i = index; const s = scale; const d = disp
        address = () => cpu.reg64(b) + cpu.reg64(i) * s + d
      } else if (base >= 0) {
        const b = base; const d = disp
        address = () => cpu.reg64(b) + d
      } else if (index >= 0) {
        const i = index; const s = scale; const d = disp
        address = () => cpu.reg64(i) * s + d
      } else {
        const d = disp
        address = () => d
      }
      return { mod, reg, rm, address }
    }

    const opcode = byte()
    let op: Op
    const registerOnly = (m: ModRm, name: string): number => {
      if (m.mod !== 3) unsupported(`${name} with a memory operand`)
      return m.rm
    }

    if (opcode >= 0xb8 && opcode <= 0xbf) {
      const dst = opcode - 0xb8
      const value = imm32()
      const next = at
      op = () => { r[dst] = value; cpu.hi[dst] = 0; cpu.rip = next; return false }
    } else if (opcode === 0x89 || opcode === 0x8b) {
      const m = modrm()
      const next = at
      const reg = m.reg
      if (m.mod === 3) {
        const [dst, src] = opcode === 0x89 ? [m.rm, reg] : [reg, m.rm]
        op = () => { r[dst] = r[src]; cpu.hi[dst] = 0; cpu.rip = next; return false }
      } else if (opcode === 0x89) {
        const address = m.address!
        op = () => { mmu.rip = rip; mmu.write32(address(), r[reg]); cpu.rip = next; return false }
      } else {
        const address = m.address!
        op = () => { mmu.rip = rip; const value = mmu.read32(address()); r[reg] = value; cpu.hi[reg] = 0; cpu.rip = next; return false }
      }
    } else if (opcode === 0x01 || opcode === 0x09 || opcode === 0x11 || opcode === 0x19 || opcode === 0x21 || opcode === 0x29 || opcode === 0x31 || opcode === 0x39) {
      // ALU r/m32, r32 (the assembler's add/sub/xor/cmp, and their siblings).
      const m = modrm()
      const dst = registerOnly(m, `ALU opcode 0x${opcode.toString(16)}`)
      const src = m.reg
      const compute = aluOperation(cpu, opcode >>> 3)
      const store = (opcode >>> 3) !== 7
      const next = at
      op = () => { const value = compute(r[dst], r[src]); if (store) { r[dst] = value; cpu.hi[dst] = 0 } cpu.rip = next; return false }
    } else if (opcode === 0x81) {
      const m = modrm()
      const dst = registerOnly(m, 'ALU immediate')
      const value = imm32()
      const compute = aluOperation(cpu, m.reg)
      const store = m.reg !== 7
      const next = at
      op = () => { const result = compute(r[dst], value); if (store) { r[dst] = result; cpu.hi[dst] = 0 } cpu.rip = next; return false }
    } else if (opcode === 0x69) {
      const m = modrm()
      const src = registerOnly(m, 'imul')
      const dst = m.reg
      const value = imm32() | 0
      const next = at
      op = () => {
        // Signed overflow sets CF and OF. The double product is exact below 2^53 and far beyond ±2^31 above it.
        const product = (r[src] | 0) * value
        const result = Math.imul(r[src], value) >>> 0
        cpu.cf = cpu.of = product !== (result | 0) ? 1 : 0
        cpu.zf = result === 0 ? 1 : 0
        cpu.sf = result >>> 31
        r[dst] = result; cpu.hi[dst] = 0; cpu.rip = next; return false
      }
    } else if (opcode === 0xc1) {
      const m = modrm()
      const dst = registerOnly(m, 'shift')
      const count = byte() & 31
      const next = at
      const kind = m.reg
      if (kind !== 4 && kind !== 5 && kind !== 7) unsupported(`shift/rotate extension /${kind}`)
      if (count === 0) {
        // A zero count changes nothing, flags included (but still writes the register: zero extension).
        op = () => { cpu.hi[dst] = 0; cpu.rip = next; return false }
      } else {
        op = () => {
          const a = r[dst]
          let result: number
          if (kind === 4) {
            result = (a << count) >>> 0
            cpu.cf = (a >>> (32 - count)) & 1
            cpu.of = (result >>> 31) ^ cpu.cf
          } else if (kind === 5) {
            result = a >>> count
            cpu.cf = (a >>> (count - 1)) & 1
            cpu.of = count === 1 ? a >>> 31 : 0
          } else {
            result = ((a | 0) >> count) >>> 0
            cpu.cf = ((a | 0) >> (count - 1)) & 1
            cpu.of = 0
          }
          cpu.zf = result === 0 ? 1 : 0
          cpu.sf = result >>> 31
          r[dst] = result; cpu.hi[dst] = 0; cpu.rip = next; return false
        }
      }
    } else if (opcode === 0xff) {
      const m = modrm()
      const dst = registerOnly(m, 'inc/dec')
      const next = at
      if (m.reg === 0) {
        op = () => { const result = (r[dst] + 1) >>> 0; cpu.of = result === 0x80000000 ? 1 : 0; cpu.zf = result === 0 ? 1 : 0; cpu.sf = result >>> 31; r[dst] = result; cpu.hi[dst] = 0; cpu.rip = next; return false }
      } else if (m.reg === 1) {
        op = () => { const result = (r[dst] - 1) >>> 0; cpu.of = result === 0x7fffffff ? 1 : 0; cpu.zf = result === 0 ? 1 : 0; cpu.sf = result >>> 31; r[dst] = result; cpu.hi[dst] = 0; cpu.rip = next; return false }
      } else {
        op = unsupported(`opcode 0xff /${m.reg}`)
      }
    } else if (opcode === 0xf7) {
      const m = modrm()
      const src = registerOnly(m, 'div')
      if (m.reg !== 6) unsupported(`opcode 0xf7 /${m.reg}`)
      const next = at
      op = () => {
        const divisor = r[src]
        if (divisor === 0) throw new X86Fault('divide-error', rip, 'division by zero')
        const high = r[2]
        if (high >= divisor) throw new X86Fault('divide-error', rip, 'quotient does not fit in 32 bits')
        let quotient: number
        let remainder: number
        if (high === 0) {
          quotient = Math.floor(r[0] / divisor)
          remainder = r[0] - quotient * divisor
        } else {
          const dividend = (BigInt(high) << 32n) | BigInt(r[0])
          quotient = Number(dividend / BigInt(divisor))
          remainder = Number(dividend % BigInt(divisor))
        }
        // Flags are undefined after div; they are left as they were.
        r[0] = quotient; cpu.hi[0] = 0; r[2] = remainder; cpu.hi[2] = 0; cpu.rip = next; return false
      }
    } else if (opcode === 0xcc) {
      // A trap: RIP moves past it first, as after KVM's breakpoint exit stepped over.
      const next = at
      op = () => { cpu.rip = next; return true }
    } else if (opcode === 0xe9 || opcode === 0xeb) {
      const disp = opcode === 0xe9 ? imm32() | 0 : imm8s()
      const target = at + disp
      op = () => { cpu.rip = target; return false }
    } else if (opcode === 0x0f) {
      const second = byte()
      if (second < 0x80 || second > 0x8f) unsupported(`two-byte opcode 0x0f 0x${second.toString(16)}`)
      const condition = conditionOf(cpu, second & 0xf, unsupported)
      const disp = imm32() | 0
      const next = at
      const target = next + disp
      op = () => { cpu.rip = condition() ? target : next; return false }
    } else if (opcode >= 0x70 && opcode <= 0x7f) {
      const condition = conditionOf(cpu, opcode & 0xf, unsupported)
      const disp = imm8s()
      const next = at
      const target = next + disp
      op = () => { cpu.rip = condition() ? target : next; return false }
    } else {
      op = unsupported(`unknown opcode 0x${opcode.toString(16).padStart(2, '0')}`)
    }
    return { op, length: at - rip }
  }
}

/** ALU operation number (ModRM /digit for 0x81, opcode bits 3..5 for 0x01..0x39): add or adc sbb and sub xor cmp. */
function aluOperation (cpu: Cpu, operation: number): (a: number, b: number) => number {
  const logic = (result: number): number => { cpu.cf = 0; cpu.of = 0; cpu.zf = result === 0 ? 1 : 0; cpu.sf = result >>> 31; return result }
  const add = (a: number, b: number, carry: number): number => {
    const sum = a + b + carry
    const result = sum >>> 0
    cpu.cf = sum > 0xffffffff ? 1 : 0
    cpu.of = (((a ^ result) & (b ^ result)) >>> 31)
    cpu.zf = result === 0 ? 1 : 0
    cpu.sf = result >>> 31
    return result
  }
  const subtract = (a: number, b: number, borrow: number): number => {
    const result = (a - b - borrow) >>> 0
    cpu.cf = a < b + borrow ? 1 : 0
    cpu.of = (((a ^ b) & (a ^ result)) >>> 31)
    cpu.zf = result === 0 ? 1 : 0
    cpu.sf = result >>> 31
    return result
  }
  switch (operation) {
    case 0: return (a, b) => add(a, b, 0)
    case 1: return (a, b) => logic((a | b) >>> 0)
    case 2: return (a, b) => add(a, b, cpu.cf)
    case 3: return (a, b) => subtract(a, b, cpu.cf)
    case 4: return (a, b) => logic((a & b) >>> 0)
    case 5: return (a, b) => subtract(a, b, 0)
    case 6: return (a, b) => logic((a ^ b) >>> 0)
    default: return (a, b) => subtract(a, b, 0)
  }
}

/** The jcc condition with code `code` (Intel SDM table B-1); parity is not tracked, so jp/jnp fault. */
function conditionOf (cpu: Cpu, code: number, unsupported: (what: string) => never): () => boolean {
  switch (code) {
    case 0x0: return () => cpu.of === 1
    case 0x1: return () => cpu.of === 0
    case 0x2: return () => cpu.cf === 1
    case 0x3: return () => cpu.cf === 0
    case 0x4: return () => cpu.zf === 1
    case 0x5: return () => cpu.zf === 0
    case 0x6: return () => (cpu.cf | cpu.zf) === 1
    case 0x7: return () => (cpu.cf | cpu.zf) === 0
    case 0x8: return () => cpu.sf === 1
    case 0x9: return () => cpu.sf === 0
    case 0xc: return () => cpu.sf !== cpu.of
    case 0xd: return () => cpu.sf === cpu.of
    case 0xe: return () => cpu.zf === 1 || cpu.sf !== cpu.of
    case 0xf: return () => cpu.zf === 0 && cpu.sf === cpu.of
    default: return unsupported('jp/jnp (the parity flag is not kept)')
  }
}
