// npm run fuzz -- [--minutes N] [--target NAME[,NAME…]] [--seed S] [--list]
// Runs every target (or the named ones) for an equal share of N minutes, prints per target the
// executions, executions per second, corpus size (valid seeds + inputs kept for reaching a new
// rejection reason) and failures; exits 1 on any failure, printing the input (hex) and the
// seed that reproduces it.
import { parseArgs } from 'node:util'
import { allTargets } from './targets/index.ts'
import { runTarget, type TargetReport } from './engine/run-target.ts'
import { formatFailure, formatTable } from './engine/report.ts'
import { removeScratchHome } from './targets/home.ts'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    target: { type: 'string' },
    seed: { type: 'string' },
    list: { type: 'boolean', default: false }
  }
})

const targets = allTargets()
if (values.list === true) {
  for (const t of targets) console.log(`${t.name.padEnd(24)} ${t.what}`)
  process.exit(0)
}
const wanted = values.target?.split(',')
const chosen = wanted === undefined ? targets : targets.filter(t => wanted.includes(t.name))
const unknown = wanted?.filter(w => !targets.some(t => t.name === w)) ?? []
if (unknown.length > 0 || chosen.length === 0) {
  console.error(`unknown target ${unknown.join(', ')}; known: ${targets.map(t => t.name).join(', ')}`)
  process.exit(2)
}
const minutes = Number(values.minutes)
if (!(minutes > 0)) {
  console.error('--minutes must be a positive number')
  process.exit(2)
}
const baseSeed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed)
const shareMs = minutes * 60_000 / chosen.length

console.log(`fuzzing ${chosen.length} targets for ${minutes} min (${Math.round(shareMs / 1000)} s each), seed ${baseSeed}`)
const reports: TargetReport[] = []
for (const target of chosen) {
  const report = await runTarget(target, { seed: baseSeed, timeMs: shareMs })
  reports.push(report)
  console.log(`  ${target.name}: ${report.execs} execs${report.failure === undefined ? '' : ', FAILED'}`)
}
removeScratchHome()
console.log()
console.log(formatTable(reports))
const failed = reports.filter(r => r.failure !== undefined)
for (const r of failed) console.log(`\n${formatFailure(r)}`)
process.exit(failed.length > 0 ? 1 : 0)
