// Printed by .ci/run at the end of a run: every capability this machine could not test, with
// the reason and the tests skipped, so nobody mistakes a skip for a pass.
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { capabilities } from './capabilities.ts'
import { REPO_ROOT } from './test-node.ts'

interface Report { testResults: Array<{ name: string, assertionResults: Array<{ status: string, fullName: string }> }> }

let skippedByFile: Array<[string, number]> = []
try {
  const report = JSON.parse(readFileSync(process.argv[2] ?? 'test-results/vitest.json', 'utf8')) as Report
  skippedByFile = report.testResults
    .map((f): [string, number] => [relative(REPO_ROOT, f.name), f.assertionResults.filter(a => a.status === 'skipped' || a.status === 'pending' || a.status === 'todo').length])
    .filter(([, n]) => n > 0)
} catch {}

const missing = Object.values(capabilities()).filter(c => c.missing !== undefined)
if (missing.length > 0) console.log(`not tested here: ${missing.map(c => `${c.name} (${c.missing})`).join(', ')}`)
for (const [file, n] of skippedByFile) console.log(`  skipped: ${n} test${n === 1 ? '' : 's'} in ${file}`)
