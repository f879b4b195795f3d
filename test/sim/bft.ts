// `npm run sim:bft [-- --schedules N] [-- --seed S]`: runs N seeded schedules of the BFT
// simulator (consensus/sim) with the spores' real epoch rules, prints every failing seed with
// its violations, and ends with one line "N schedules, V violations". `--seed S` replays one
// schedule exactly and prints its fault log.
import { runSchedule } from '../../consensus/sim/index.ts'
import { sporesWorld } from './spores-world.ts'

function arg (name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1]
}

const seedArg = arg('--seed')
const first = Number(arg('--first') ?? 1)
const count = seedArg === undefined ? Number(arg('--schedules') ?? 10_000) : 1
if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(first)) {
  console.error('usage: npm run sim:bft -- [--schedules N] [--first S] | [--seed S]')
  process.exit(2)
}
const t0 = performance.now()
let violations = 0
let failed = 0
let epochs = 0
let messages = 0
for (let i = 0; i < count; i++) {
  const seed = seedArg === undefined ? first + i : Number(seedArg)
  const r = await runSchedule(seed, sporesWorld)
  epochs += r.epochs
  messages += r.messages
  if (seedArg !== undefined) {
    console.log(`seed ${seed}: ${r.plan.members} members, f = ${r.plan.f}, Byzantine ${JSON.stringify(r.plan.byzantine)}`)
    for (const line of r.log) console.log(`  ${line}`)
    console.log(`  ${r.epochs} epochs certified, ${r.steps} steps, ${r.messages} messages`)
  }
  if (r.violations.length > 0) {
    failed++
    violations += r.violations.length
    console.log(`seed ${seed} FAILED (replay: npm run sim:bft -- --seed ${seed}):`)
    for (const v of r.violations) console.log(`  ${v}`)
  }
  if (seedArg === undefined && (i + 1) % 500 === 0) console.error(`${i + 1} schedules, ${failed} failing, ${((i + 1) / ((performance.now() - t0) / 1000)).toFixed(1)} schedules/s`)
}
const seconds = (performance.now() - t0) / 1000
console.log(`throughput: ${(count / seconds).toFixed(1)} schedules/s (${seconds.toFixed(1)} s), ${epochs} epochs certified, ${messages} messages simulated`)
console.log(`${count} schedules, ${violations} violations`)
process.exit(failed > 0 ? 1 : 0)
