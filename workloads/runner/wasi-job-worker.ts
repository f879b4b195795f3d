// The body of a WASI job's Worker. It reaches the Worker as source text (wasi-job.ts), so the
// daemon's bundle needs no file beside it; it must therefore refer to nothing outside itself,
// and takes Node's modules from process.getBuiltinModule. A trap, or a module WASI cannot
// start, is written where the job's errors go and ends the job like an abort.
export interface JobWorkerData {
  module: WebAssembly.Module
  args: string[]
  env: Record<string, string>
  dir: string
  stdin: number
  stdout: number
  stderr: number
  trapExitCode: number
}

export interface JobWorkerReport {
  exitCode: number
}

export function jobWorkerMain (): void {
  const { workerData, parentPort } = process.getBuiltinModule('node:worker_threads')
  const { WASI } = process.getBuiltinModule('node:wasi')
  const { writeSync } = process.getBuiltinModule('node:fs')
  const data = workerData as JobWorkerData
  let exitCode: number
  try {
    const wasi = new WASI({ version: 'preview1', args: data.args, env: data.env, preopens: { '/': data.dir }, stdin: data.stdin, stdout: data.stdout, stderr: data.stderr, returnOnExit: true })
    const instance = new WebAssembly.Instance(data.module, wasi.getImportObject() as WebAssembly.Imports)
    exitCode = wasi.start(instance)
  } catch (err) {
    writeSync(data.stderr, `\n${String(err)}\n`)
    exitCode = data.trapExitCode
  }
  const report: JobWorkerReport = { exitCode }
  parentPort?.postMessage(report)
}
