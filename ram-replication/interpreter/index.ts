// An x86-64 interpreter for the page-writer guest (exactly the encodings guest/x86-assembler.ts
// emits), with the guest's own page tables and an exact dirty log: the engine for machines
// without KVM. Pure TypeScript, no native code.
export { X86Interpreter } from './x86-interpreter.ts'
export type { InterpreterOptions, RunResult } from './x86-interpreter.ts'
export { Cpu, FLAG_CF, FLAG_OF, FLAG_SF, FLAG_ZF, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP } from './cpu.ts'
export { DirtyLog } from './dirty-log.ts'
export { Mmu } from './mmu.ts'
export type { MmuOptions } from './mmu.ts'
export { X86Fault } from './errors.ts'
export type { X86FaultKind } from './errors.ts'
