// A job's linear memory is held to its memoryMb by the engine itself: the module's memory
// section is rewritten so every memory declares a maximum no larger than the job's share, and
// memory.grow beyond it fails inside the module (returns -1) instead of taking the node's RAM.
// A Worker's resourceLimits cannot do this: they bound the JavaScript heap, and linear memory
// lives outside it. Only the memory section is read; the engine validates the rest.
import { InvalidWasmModuleError } from './invalid-wasm-module-error.ts'

export const WASM_PAGE_BYTES = 64 * 1024
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00] // \0asm, version 1
const MEMORY_SECTION = 5
const HAS_MAX = 0x01
const MEMORY64 = 0x04

export function capLinearMemory (wasm: Uint8Array, maxPages: number): Uint8Array<ArrayBuffer> {
  if (wasm.length < HEADER.length || HEADER.some((b, i) => wasm[i] !== b)) throw new InvalidWasmModuleError('not a WebAssembly module (no \\0asm version 1 header)')
  const reader = new ModuleReader(wasm, HEADER.length)
  while (!reader.done) {
    const sectionStart = reader.offset
    const id = reader.byte()
    const size = reader.u32()
    const contentStart = reader.offset
    const contentEnd = contentStart + size
    if (contentEnd > wasm.length) throw new InvalidWasmModuleError(`not a WebAssembly module: section ${id} runs past the end of the bytes`)
    if (id === MEMORY_SECTION) {
      const content = cappedMemorySection(wasm.subarray(contentStart, contentEnd), maxPages)
      return concat([wasm.subarray(0, sectionStart), Uint8Array.from([id, ...uleb(content.length), ...content]), wasm.subarray(contentEnd)])
    }
    reader.offset = contentEnd
  }
  return new Uint8Array(wasm)
}

function cappedMemorySection (content: Uint8Array, maxPages: number): number[] {
  const reader = new ModuleReader(content, 0)
  const count = reader.u32()
  const out = uleb(count)
  for (let i = 0; i < count; i++) {
    const flags = reader.u32()
    if ((flags & MEMORY64) !== 0) throw new InvalidWasmModuleError('64-bit memories are not supported')
    const initial = reader.u32()
    const declaredMax = (flags & HAS_MAX) !== 0 ? reader.u32() : undefined
    if (initial > maxPages) throw new InvalidWasmModuleError(`the module's memory starts at ${initial * WASM_PAGE_BYTES / 1024} KiB, more than the job's memoryMb`)
    out.push(...uleb(flags | HAS_MAX), ...uleb(initial), ...uleb(Math.min(declaredMax ?? maxPages, maxPages)))
  }
  if (!reader.done) throw new InvalidWasmModuleError('not a WebAssembly module: its memory section is malformed')
  return out
}

class ModuleReader {
  readonly #bytes: Uint8Array
  offset: number

  constructor (bytes: Uint8Array, offset: number) {
    this.#bytes = bytes
    this.offset = offset
  }

  get done (): boolean {
    return this.offset >= this.#bytes.length
  }

  byte (): number {
    if (this.done) throw new InvalidWasmModuleError('not a WebAssembly module: it ends in the middle of a section')
    return this.#bytes[this.offset++]
  }

  /** unsigned LEB128, at most 5 bytes */
  u32 (): number {
    let value = 0
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte()
      value += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) return value
    }
    throw new InvalidWasmModuleError('not a WebAssembly module: a number is too long')
  }
}

function uleb (n: number): number[] {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return out
}

function concat (parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
