// `npm test`: the whole suite in about half the wall time of one vitest run on a 2-core machine.
//
// The files that start daemons (the `daemons` project) must run one at a time: two of them at
// once starve each other's daemons. They spend most of their time waiting on timers and the
// network, so the in-process files (one worker) run beside them in a second vitest process,
// instead of before them; that process first runs the one daemon file whose load is like an
// in-process file's (BESIDE below). The node bundle the daemons run is built once, first. The JSON
// reports are merged into test-results/vitest.json, which .ci/run reads for its totals.
//
// With arguments (`npm test -- test/node/network.test.ts`, a filter, --project …) it is one
// plain `vitest run` with them.
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NODE, REPO_ROOT } from './test-node.ts'

const VITEST = join(REPO_ROOT, 'node_modules/vitest/vitest.mjs')
const RESULTS = join(REPO_ROOT, 'test-results')

interface Report {
  numPassedTests: number
  numFailedTests: number
  numPendingTests: number
  numTodoTests: number
  numTotalTests: number
  numPassedTestSuites: number
  numFailedTestSuites: number
  numPendingTestSuites: number
  numTotalTestSuites: number
  success: boolean
  startTime: number
  testResults: unknown[]
  [field: string]: unknown
}

async function vitest (args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  return await new Promise((resolve) => {
    const child = spawn(NODE, [VITEST, 'run', ...args], { cwd: REPO_ROOT, stdio: 'inherit', env: { ...process.env, ...env } })
    child.once('exit', (code, signal) => { resolve(code ?? (signal === null ? 1 : 128)) })
  })
}

function readReport (file: string): Report | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Report
  } catch {
    return undefined
  }
}

/** One report of both runs; a run that wrote none counts as a failed suite. */
function merge (reports: Array<Report | undefined>): Report {
  const present = reports.filter((r): r is Report => r !== undefined)
  const sum = (field: keyof Report): number => present.reduce((n, r) => n + (r[field] as number ?? 0), 0)
  return {
    ...(present[0] ?? {}),
    numPassedTests: sum('numPassedTests'),
    numFailedTests: sum('numFailedTests'),
    numPendingTests: sum('numPendingTests'),
    numTodoTests: sum('numTodoTests'),
    numTotalTests: sum('numTotalTests'),
    numPassedTestSuites: sum('numPassedTestSuites'),
    numFailedTestSuites: sum('numFailedTestSuites') + (reports.length - present.length),
    numPendingTestSuites: sum('numPendingTestSuites'),
    numTotalTestSuites: sum('numTotalTestSuites'),
    success: present.length === reports.length && present.every(r => r.success),
    startTime: Math.min(...present.map(r => r.startTime), Date.now()),
    testResults: present.flatMap(r => r.testResults)
  }
}

const passed = process.argv.slice(2)
if (passed.length > 0) process.exit(await vitest(passed))

mkdirSync(RESULTS, { recursive: true })
// built once here: two vitest processes building it at the same time would race on the file
if (process.env.MYCELIUM_TEST_SOURCES !== '1') execFileSync(NODE, [join(REPO_ROOT, 'node/build.ts')], { stdio: ['ignore', 'ignore', 'inherit'] })
const env = { MYCELIUM_BUNDLE_BUILT: '1' }
const files = { daemons: join(RESULTS, 'vitest-daemons.json'), beside: join(RESULTS, 'vitest-beside.json'), inProcess: join(RESULTS, 'vitest-in-process.json') }
// a report left by an earlier run must not stand in for one this run failed to write
for (const f of Object.values(files)) rmSync(f, { force: true })
// The daemon files take longer than the in-process files (~560 s against ~400 s on two cores),
// so the in-process side first runs a daemon file that mostly keeps one core busy, as an
// in-process file does (the aarch64 install: npm, then one emulated Node under qemu-user); the
// daemon side still ends alone, with the VM lease files.
const BESIDE = 'test/install/install-aarch64.test.ts'
const codes = await Promise.all([
  vitest(['--project', 'daemons', '--exclude', BESIDE], { ...env, MYCELIUM_JSON_REPORT: files.daemons }),
  (async () => [
    await vitest(['--project', 'daemons', BESIDE], { ...env, MYCELIUM_JSON_REPORT: files.beside }),
    await vitest(['--project', 'in-process'], { ...env, MYCELIUM_JSON_REPORT: files.inProcess, MYCELIUM_IN_PROCESS_WORKERS: '1' })
  ])()
]).then(([daemons, [beside, inProcess]]) => [daemons, beside, inProcess])
const runs = ['daemons', `daemons (${BESIDE})`, 'in-process']
const reports = [files.daemons, files.beside, files.inProcess].map(f => existsSync(f) ? readReport(f) : undefined)
const merged = merge(reports)
// a process that wrote no report shows as a failed file (.ci/run counts it as a failure outside a test)
for (const [i, project] of runs.entries()) {
  if (reports[i] === undefined) merged.testResults.push({ name: `${REPO_ROOT}/vitest project ${project}`, status: 'failed', message: `the vitest run of the ${project} files wrote no report (exit ${codes[i]})`, assertionResults: [] })
}
writeFileSync(join(RESULTS, 'vitest.json'), JSON.stringify(merged))
console.log(`\nwhole suite: ${merged.numPassedTests} passed, ${merged.numFailedTests} failed, ${merged.numPendingTests + merged.numTodoTests} skipped (${runs.map((r, i) => `${r} exit ${codes[i]}`).join(', ')})`)
process.exit(codes.some(c => c !== 0) || !merged.success ? 1 : 0)
