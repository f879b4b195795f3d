// Runs one target for a time budget or a number of executions under fast-check, and checks
// every execution: no error but the project's named ones, no decode slower than HANG_MS,
// valid input accepted, accepted input re-encoded to itself (canonical formats) or to the
// same value. Inputs that reach a rejection reason not seen before are kept in the pool, and
// further inputs are mutated from them: a coarse feedback loop, since no coverage-guided
// JavaScript fuzzer installs here from npm alone.
import fc from 'fast-check'
import { isDeepStrictEqual } from 'node:util'
import { equalBytes } from '../../../crypto/index.ts'
import { inputsOf, type FuzzInput } from './inputs.ts'
import { FuzzFailure, isAsync, rejectionOf, type AnyTarget, type AsyncFuzzTarget, type FuzzTarget } from './target.ts'

/** One execution slower than this is a hang. */
export const HANG_MS = 1000
/** Kept inputs per target: enough to steer mutations, small enough to stay cheap. */
const POOL_MAX = 256

export interface Budget {
  seed: number
  /** Stop after this long… */
  timeMs?: number
  /** …or after this many executions. */
  execs?: number
}

export interface TargetReport {
  name: string
  what: string
  seed: number
  execs: number
  elapsedMs: number
  seeds: number
  /** Distinct rejection reasons (and acceptance) reached: each kept one input. */
  reasons: Map<string, Uint8Array>
  failure?: { message: string, input: Uint8Array, how: string }
}

class Run {
  readonly report: TargetReport
  readonly pool: Uint8Array[] = []
  failed = false

  constructor (target: AnyTarget, budget: Budget) {
    const seeds = target.layers.reduce((n, l) => n + l.seeds.length, 0)
    this.report = { name: target.name, what: target.what, seed: budget.seed, execs: 0, elapsedMs: 0, seeds, reasons: new Map() }
  }

  note (reason: string, bytes: Uint8Array): void {
    if (this.report.reasons.has(reason) || this.failed) return
    this.report.reasons.set(reason, bytes)
    if (this.pool.length < POOL_MAX) this.pool.push(bytes)
  }

  fail (input: FuzzInput, message: string): never {
    // shrinking calls again with smaller inputs: the last failure is the smallest one
    this.failed = true
    this.report.failure = { message, input: input.bytes, how: input.how }
    throw new FuzzFailure(message)
  }
}

function describe (err: unknown): string {
  if (!(err instanceof Error)) return `a thrown ${typeof err}: ${String(err)}`
  const at = err.stack?.split('\n').find(l => l.includes('/work/') || l.includes('file://')) ?? ''
  return `${err.name}: ${err.message.slice(0, 200)} ${at.trim()}`
}

function checkAccepted (run: Run, target: FuzzTarget, input: FuzzInput, decoded: unknown): void {
  if (target.reencode === undefined) return
  let again: Uint8Array
  try {
    again = target.reencode(decoded)
  } catch (err) {
    run.fail(input, `an accepted value does not encode again: ${describe(err)}`)
  }
  if (target.canonical === true) {
    if (!equalBytes(again, input.bytes)) run.fail(input, 'an accepted input is not the canonical encoding of its value (two encodings of one value)')
    return
  }
  let back: unknown
  try {
    back = target.decode(again)
  } catch (err) {
    run.fail(input, `an accepted value, encoded again, is refused: ${describe(err)}`)
  }
  if (!isDeepStrictEqual(back, decoded)) run.fail(input, 'an accepted value, encoded and decoded again, changed')
}

function execSync (run: Run, target: FuzzTarget, given: FuzzInput): void {
  run.report.execs++
  const input = target.maxBytes !== undefined && given.bytes.length > target.maxBytes ? { ...given, bytes: given.bytes.subarray(0, target.maxBytes) } : given
  const started = performance.now()
  let decoded: unknown
  let error: unknown
  let threw = false
  try {
    decoded = target.decode(input.bytes)
  } catch (err) {
    threw = true
    error = err
  }
  const ms = performance.now() - started
  if (ms > HANG_MS) run.fail(input, `one decode took ${Math.round(ms)} ms (limit ${HANG_MS} ms)`)
  if (threw) {
    if (error instanceof FuzzFailure) run.fail(input, error.message)
    const reason = rejectionOf(error)
    if (reason === undefined) run.fail(input, `crash: ${describe(error)}`)
    if (input.wellFormed) run.fail(input, `a valid input was refused: ${reason}`)
    run.note(reason, input.bytes)
    return
  }
  if (target.rejected?.(decoded) === true) {
    if (input.wellFormed) run.fail(input, 'a valid input was refused (documented rejection result)')
    run.note('refused (documented result)', input.bytes)
    return
  }
  checkAccepted(run, target, input, decoded)
  run.note('accepted', input.bytes)
}

async function execAsync (run: Run, session: Awaited<ReturnType<AsyncFuzzTarget['start']>>, input: FuzzInput): Promise<void> {
  run.report.execs++
  const started = performance.now()
  let answer: string
  try {
    answer = await session.exec(input.bytes, input.wellFormed)
  } catch (err) {
    run.fail(input, err instanceof FuzzFailure ? err.message : `crash: ${describe(err)}`)
  }
  const ms = performance.now() - started
  if (ms > HANG_MS) run.fail(input, `one request took ${Math.round(ms)} ms (limit ${HANG_MS} ms)`)
  // every 16th request, and after any that got no answer, the server must still serve
  if (run.report.execs % 16 === 0 || answer === 'no answer') {
    try {
      await session.alive()
    } catch (err) {
      run.fail(input, `the server is down after this request: ${(err as Error).message}`)
    }
  }
  run.note(answer, input.bytes)
}

function parameters (budget: Budget): fc.Parameters<[FuzzInput]> {
  return {
    seed: budget.seed,
    numRuns: budget.execs ?? 2 ** 31 - 1,
    interruptAfterTimeLimit: budget.timeMs,
    markInterruptAsFailure: false,
    // shrinking is not bounded by the time limit (a large failing input took minutes): the
    // input is reported as found, with the seed that finds it again
    endOnFailure: true
  }
}

export async function runTarget (target: AnyTarget, budget: Budget): Promise<TargetReport> {
  const run = new Run(target, budget)
  const started = performance.now()
  const inputs = inputsOf(target.layers, run.pool, target.extra)
  try {
    if (isAsync(target)) {
      const session = await target.start()
      const unhandled: unknown[] = []
      const onUnhandled = (err: unknown): void => { unhandled.push(err) }
      process.on('unhandledRejection', onUnhandled)
      process.on('uncaughtException', onUnhandled)
      // fast-check's time limit resolves the run while an execution may still be under way: it
      // is awaited before the server stops, or its requests would meet a closed port
      let inflight: Promise<void> | undefined
      try {
        await fc.assert(fc.asyncProperty(inputs, async (input) => {
          inflight = execAsync(run, session, input).then(() => {
            if (unhandled.length > 0) run.fail(input, `unhandled rejection in the server: ${describe(unhandled[0])}`)
          })
          await inflight
        }), parameters(budget))
      } finally {
        await inflight?.catch(() => {})
        process.off('unhandledRejection', onUnhandled)
        process.off('uncaughtException', onUnhandled)
        await session.stop()
      }
    } else {
      // every seed, as it is, must be accepted (and round-trip) before anything is mutated
      for (const layer of target.layers) {
        for (const seed of layer.seeds) execSync(run, target, { bytes: layer.wrap === undefined ? seed : layer.wrap(seed), wellFormed: true, how: `seed of layer ${layer.name}` })
      }
      fc.assert(fc.property(inputs, (input) => { execSync(run, target, input) }), parameters(budget))
    }
  } catch (err) {
    if (run.report.failure === undefined) run.report.failure = { message: `the harness failed: ${describe(err)}`, input: new Uint8Array(0), how: 'harness' }
  }
  run.report.elapsedMs = performance.now() - started
  return run.report
}
