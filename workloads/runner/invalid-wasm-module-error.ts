// Bytes a WASI job was given that cannot run as a WASI command: not WebAssembly, malformed,
// without `_start`, needing imports WASI does not provide, or more memory than the job has.
export class InvalidWasmModuleError extends Error {
  readonly name = 'InvalidWasmModuleError'
}
