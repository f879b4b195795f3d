// A run-to-completion job: a WASI (preview1) command module run in a worker thread of the
// daemon, so a module that never returns neither blocks the daemon nor outlives its timeout
// (the worker is terminated). The module sees `dir` as `/`, its arguments after its instance
// id as argv[0], and only the environment it is given. Its linear memory is capped at memoryMb
// (wasm-memory-cap.ts); the worker's own JavaScript heap, which only runs the WASI glue, is
// held small. Its output goes to stdout.log and stderr.log in logDir, rewritten each run.
import { Worker } from 'node:worker_threads'
import { appendFile, mkdir, open, stat, type FileHandle } from 'node:fs/promises'
import { InvalidSpecError, checkInstanceId, checkPositive } from './invalid-spec-error.ts'
import { prepareJobModule } from './job-module.ts'
import { readTail } from './read-log.ts'
import { logFile } from './rotating-log.ts'
import { jobWorkerMain, type JobWorkerData, type JobWorkerReport } from './wasi-job-worker.ts'

export interface JobSpec {
  instanceId: string
  wasm: Uint8Array
  args: string[]
  env: Record<string, string>
  /** preopened as / for the module */
  dir: string
  logDir: string
  timeoutMs: number
  memoryMb: number
}

export interface JobResult {
  exitCode: number
  /** the last 64 KiB */
  stdout: string
  stderr: string
  durationMs: number
  timedOut: boolean
}

/** as timeout(1) reports a command it had to stop */
export const TIMEOUT_EXIT_CODE = 124
/** as a process that aborted: a trap, or a module WASI could not start */
export const TRAP_EXIT_CODE = 134
const TAIL_BYTES = 64 * 1024
const WORKER_LIMITS = { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8, stackSizeMb: 4 }
const WORKER_SOURCE = `(${jobWorkerMain.toString()})()`

export async function runWasiJob (spec: JobSpec): Promise<JobResult> {
  checkJobSpec(spec)
  const module = await prepareJobModule(spec.wasm, spec.memoryMb)
  if ((await stat(spec.dir).catch(() => undefined))?.isDirectory() !== true) throw new InvalidSpecError('dir', `is not a directory: ${spec.dir}`)
  await mkdir(spec.logDir, { recursive: true })
  const stdoutPath = logFile(spec.logDir, 'stdout')
  const stderrPath = logFile(spec.logDir, 'stderr')
  const files: FileHandle[] = []
  const started = performance.now()
  let outcome: WorkerOutcome
  try {
    for (const [path, flags] of [['/dev/null', 'r'], [stdoutPath, 'w'], [stderrPath, 'w']]) files.push(await open(path, flags))
    outcome = await runInWorker(module, spec, { stdin: files[0].fd, stdout: files[1].fd, stderr: files[2].fd })
  } finally {
    await Promise.all(files.map(async f => await f.close()))
  }
  const durationMs = Math.round(performance.now() - started)
  if (outcome.failure !== undefined) await appendFile(stderrPath, `\nthe job's worker failed: ${outcome.failure.message}\n`)
  return {
    exitCode: outcome.exitCode,
    stdout: (await readTail(stdoutPath, TAIL_BYTES)).toString('utf8'),
    stderr: (await readTail(stderrPath, TAIL_BYTES)).toString('utf8'),
    durationMs,
    timedOut: outcome.timedOut
  }
}

interface WorkerOutcome { exitCode: number, timedOut: boolean, failure?: Error }

async function runInWorker (module: WebAssembly.Module, spec: JobSpec, fds: { stdin: number, stdout: number, stderr: number }): Promise<WorkerOutcome> {
  const data: JobWorkerData = { module, args: [spec.instanceId, ...spec.args], env: { ...spec.env }, dir: spec.dir, ...fds, trapExitCode: TRAP_EXIT_CODE }
  return await new Promise(resolve => {
    // --no-warnings: node:wasi's experimental-feature warning would reach the daemon's stderr at every job
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: data, resourceLimits: WORKER_LIMITS, execArgv: ['--no-warnings'] })
    let report: JobWorkerReport | undefined
    let failure: Error | undefined
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      void worker.terminate()
    }, spec.timeoutMs)
    worker.on('message', (message: JobWorkerReport) => { report = message })
    worker.on('error', err => { failure = err })
    worker.on('exit', () => {
      clearTimeout(timer)
      const exitCode = report?.exitCode ?? (timedOut ? TIMEOUT_EXIT_CODE : TRAP_EXIT_CODE)
      resolve({ exitCode, timedOut: timedOut && report === undefined, failure })
    })
  })
}

function checkJobSpec (spec: JobSpec): void {
  checkInstanceId(spec.instanceId)
  if (!(spec.wasm instanceof Uint8Array)) throw new InvalidSpecError('wasm', 'must be the module\'s bytes')
  if (!Array.isArray(spec.args) || !spec.args.every(a => typeof a === 'string')) throw new InvalidSpecError('args', 'must be strings')
  if (typeof spec.env !== 'object' || spec.env === null || !Object.values(spec.env).every(v => typeof v === 'string')) throw new InvalidSpecError('env', 'must map names to strings')
  if (typeof spec.dir !== 'string' || spec.dir.length === 0) throw new InvalidSpecError('dir', 'must be a directory')
  if (typeof spec.logDir !== 'string' || spec.logDir.length === 0) throw new InvalidSpecError('logDir', 'must be a directory')
  checkPositive('timeoutMs', spec.timeoutMs)
  checkPositive('memoryMb', spec.memoryMb)
}
