// Turns a job's bytes into a module a WASI worker can start, or says why it cannot be one.
// Compiled here, off the worker, so a bad module is a clear error before anything runs, and
// the compiled module is handed to the worker as it is.
import { InvalidWasmModuleError } from './invalid-wasm-module-error.ts'
import { capLinearMemory, WASM_PAGE_BYTES } from './wasm-memory-cap.ts'

const WASI_MODULE = 'wasi_snapshot_preview1'

export async function prepareJobModule (wasm: Uint8Array, memoryMb: number): Promise<WebAssembly.Module> {
  const maxPages = Math.max(1, Math.floor(memoryMb * 1024 * 1024 / WASM_PAGE_BYTES))
  let module: WebAssembly.Module
  try {
    module = await WebAssembly.compile(capLinearMemory(wasm, maxPages))
  } catch (err) {
    if (err instanceof InvalidWasmModuleError) throw err
    throw new InvalidWasmModuleError(`not a valid WebAssembly module: ${(err as Error).message}`)
  }
  const exports = WebAssembly.Module.exports(module)
  if (!exports.some(e => e.name === '_start' && e.kind === 'function')) throw new InvalidWasmModuleError('the module exports no _start function, which a WASI command starts at')
  if (!exports.some(e => e.name === 'memory' && e.kind === 'memory')) throw new InvalidWasmModuleError('the module exports no memory, through which WASI passes its data')
  const foreign = WebAssembly.Module.imports(module).filter(i => i.module !== WASI_MODULE)
  if (foreign.length > 0) throw new InvalidWasmModuleError(`the module imports what WASI preview1 does not provide: ${foreign.map(i => `${i.module}.${i.name}`).join(', ')}`)
  return module
}
