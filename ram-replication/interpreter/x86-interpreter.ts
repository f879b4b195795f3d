// Runs a 64-bit user-mode guest instruction by instruction over its own memory. Each
// instruction is decoded once into a closure, cached by RIP; the cache is dropped if the guest
// ever stores into a page holding decoded code or a page table (see mmu.ts), so it never runs
// stale code. The caller runs the guest in bounded slices: between two `run` calls the guest
// is stopped at an instruction boundary and its state can be read or saved.
import { Cpu } from './cpu.ts'
import { Decoder } from './decoder.ts'
import type { Op } from './decoder.ts'
import { Mmu } from './mmu.ts'
import type { DirtyLog } from './dirty-log.ts'

export interface InterpreterOptions {
  /** Physical address of the PML4. */
  cr3: number
  /** CPL 3 (the page writer's mode): pages must be user-accessible. Default true. */
  user?: boolean
}

export interface RunResult {
  /** Instructions retired in this call. */
  instructions: number
  /** The guest reported (`int3`); RIP is past it. */
  breakpoint: boolean
}

export class X86Interpreter {
  readonly cpu = new Cpu()
  readonly mmu: Mmu
  private readonly decoder: Decoder
  private cache = new Map<number, Op>()
  /** Instructions retired since creation. */
  instructions = 0

  constructor (memory: Uint8Array, options: InterpreterOptions) {
    this.mmu = new Mmu(memory, { cr3: options.cr3, user: options.user ?? true })
    this.mmu.onCodeInvalidated = () => { this.cache = new Map() }
    this.decoder = new Decoder(this.cpu, this.mmu)
  }

  get dirtyLog (): DirtyLog {
    return this.mmu.dirty
  }

  /**
   * Run up to `maxInstructions`, stopping early after an `int3`. Throws X86Fault when the guest
   * faults; the state is then that of the faulting instruction.
   */
  run (maxInstructions: number): RunResult {
    const cpu = this.cpu
    let executed = 0
    let breakpoint = false
    try {
      while (executed < maxInstructions) {
        const rip = cpu.rip
        let op = this.cache.get(rip)
        if (op === undefined) op = this.decodeAt(rip)
        const reported = op()
        executed++
        if (reported) {
          breakpoint = true
          break
        }
      }
    } finally {
      this.instructions += executed
    }
    return { instructions: executed, breakpoint }
  }

  private decodeAt (rip: number): Op {
    const { op, length } = this.decoder.decode(rip)
    // Watch every page the instruction's bytes lie in, so a store there drops the cache.
    this.mmu.watchCodeAt(rip)
    this.mmu.watchCodeAt(rip + length - 1)
    this.cache.set(rip, op)
    return op
  }
}
