// WASI jobs with modules written byte by byte (wasm-modules.ts): one that says hello and exits
// 3, one that never returns, one that asks for more memory than it is given, and bytes that
// are no module at all.
import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runWasiJob, InvalidWasmModuleError, type JobSpec } from '../../workloads/runner/index.ts'
import { helloModule, spinningModule, growingModule, returningModule } from './wasm-modules.ts'

// --- the jobs ---

let work: string

beforeEach(() => { work = mkdtempSync(join(tmpdir(), 'myc-wasi-')) })
afterEach(() => { rmSync(work, { recursive: true, force: true }) })

function job (wasm: Uint8Array, over: Partial<JobSpec> = {}): JobSpec {
  const dir = join(work, 'dir')
  mkdirSync(dir, { recursive: true })
  return { instanceId: 'wasi-test', wasm, args: [], env: {}, dir, logDir: join(work, 'logs'), timeoutMs: 5_000, memoryMb: 16, ...over }
}

describe('a WASI job', () => {
  it('writes to stdout and exits with the code it gives proc_exit', async () => {
    const spec = job(helloModule())
    const result = await runWasiJob(spec)
    expect(result).toMatchObject({ exitCode: 3, stdout: 'hello\n', stderr: '', timedOut: false })
    expect(result.durationMs).toBeGreaterThanOrEqual(0)
    expect(readFileSync(join(spec.logDir, 'stdout.log'), 'utf8')).toBe('hello\n')
  })

  it('exits 0 when _start returns', async () => {
    expect(await runWasiJob(job(returningModule()))).toMatchObject({ exitCode: 0, timedOut: false })
  })

  it('is stopped at timeoutMs when it never returns, and the daemon stays responsive meanwhile', async () => {
    let ticks = 0
    const ticker = setInterval(() => { ticks++ }, 20)
    const result = await runWasiJob(job(spinningModule(), { timeoutMs: 400 })).finally(() => clearInterval(ticker))
    expect(result.timedOut).toBe(true)
    expect(result.durationMs).toBeGreaterThanOrEqual(390)
    expect(result.durationMs).toBeLessThan(3_000)
    expect(ticks).toBeGreaterThan(5)
  })

  it('cannot grow its memory beyond memoryMb', async () => {
    expect((await runWasiJob(job(growingModule(), { memoryMb: 2 }))).exitCode).toBe(1)
    expect((await runWasiJob(job(growingModule(), { memoryMb: 8 }))).exitCode).toBe(0)
  })

  it('rejects bytes that are not a module, or a module without _start, with a clear error', async () => {
    const garbage = Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff)
    await expect(runWasiJob(job(garbage))).rejects.toThrow(InvalidWasmModuleError)
    await expect(runWasiJob(job(garbage))).rejects.toThrow(/not a WebAssembly module/)
    const truncated = helloModule().subarray(0, 40)
    await expect(runWasiJob(job(truncated))).rejects.toThrow(InvalidWasmModuleError)
    await expect(runWasiJob(job(returningModule(false)))).rejects.toThrow(/_start/)
    // and the next job runs as usual
    expect((await runWasiJob(job(helloModule()))).exitCode).toBe(3)
  })
})
