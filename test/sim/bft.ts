// `npm run sim:bft [-- --schedules N] [-- --first S] [-- --workers W]`: runs N seeded schedules
// of the BFT simulator (consensus/sim) with the spores' real epoch rules, spread over W worker
// threads (default: one per core), prints every failing seed with its violations, and ends
// with one line "N schedules, V violations" (after how many schedules certified an exclusion). `--seed S` replays one schedule exactly and
// prints its fault log.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import { runSchedule, type ScheduleResult } from '../../consensus/sim/index.ts'
import { sporesWorld } from './spores-world.ts'

interface Done { seed: number, violations: string[], epochs: number, messages: number, excluded: number, excludable: boolean }

/** A schedule where a certified exclusion can take a member out: an equivocator, and more than 3f+1 members. */
function excludable (r: ScheduleResult): boolean {
  return r.plan.members > 3 * r.plan.f + 1 && r.plan.byzantine.some(b => b.conduct === 'equivocate')
}

function arg (name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1]
}

function summary (r: ScheduleResult): Done {
  return { seed: r.seed, violations: r.violations, epochs: r.epochs, messages: r.messages, excluded: r.excluded.length, excludable: excludable(r) }
}

if (!isMainThread) {
  const { seeds } = workerData as { seeds: number[] }
  for (const seed of seeds) parentPort?.postMessage(summary(await runSchedule(seed, sporesWorld)))
} else {
  const seedArg = arg('--seed')
  const first = Number(arg('--first') ?? 1)
  const count = Number(arg('--schedules') ?? 10_000)
  const workers = Number(arg('--workers') ?? availableParallelism())
  if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(first) || !Number.isSafeInteger(workers) || workers < 1) {
    console.error('usage: npm run sim:bft -- [--schedules N] [--first S] [--workers W] | [--seed S]')
    process.exit(2)
  }
  if (seedArg !== undefined) {
    const r = await runSchedule(Number(seedArg), sporesWorld)
    console.log(`seed ${r.seed}: ${r.plan.members} members, f = ${r.plan.f}, Byzantine ${JSON.stringify(r.plan.byzantine)}`)
    for (const line of r.log) console.log(`  ${line}`)
    console.log(`  ${r.epochs} epochs certified, ${r.steps} steps, ${r.messages} messages${r.excluded.length > 0 ? `, excluded by a certified epoch: ${r.excluded.join(', ')}` : ''}`)
    for (const v of r.violations) console.log(`  VIOLATION ${v}`)
    console.log(`1 schedules, ${r.violations.length} violations`)
    process.exit(r.violations.length > 0 ? 1 : 0)
  }
  const t0 = performance.now()
  let done = 0
  let failed = 0
  let violations = 0
  let epochs = 0
  let messages = 0
  let excludableRuns = 0
  let excludedRuns = 0
  const slices: number[][] = Array.from({ length: workers }, () => [])
  for (let i = 0; i < count; i++) slices[i % workers].push(first + i)
  await Promise.all(slices.filter(s => s.length > 0).map(async seeds => {
    const w = new Worker(new URL(import.meta.url), { workerData: { seeds } })
    w.on('message', (d: Done) => {
      done++
      epochs += d.epochs
      messages += d.messages
      if (d.excludable) excludableRuns++
      if (d.excludable && d.excluded > 0) excludedRuns++
      if (d.violations.length > 0) {
        failed++
        violations += d.violations.length
        console.log(`seed ${d.seed} FAILED (replay: npm run sim:bft -- --seed ${d.seed}):`)
        for (const v of d.violations) console.log(`  ${v}`)
      }
      if (done % 500 === 0) console.error(`${done} schedules, ${failed} failing, ${(done / ((performance.now() - t0) / 1000)).toFixed(1)} schedules/s`)
    })
    await new Promise<void>((resolve, reject) => {
      w.on('error', reject)
      w.on('exit', (code) => { code === 0 ? resolve() : reject(new Error(`simulator worker exited with ${code}`)) })
    })
  }))
  const seconds = (performance.now() - t0) / 1000
  console.log(`throughput: ${(count / seconds).toFixed(1)} schedules/s on ${workers} workers (${seconds.toFixed(1)} s), ${epochs} epochs certified, ${messages} messages simulated`)
  console.log(`certified exclusions: in ${excludedRuns} of ${excludableRuns} schedules with an equivocating member among more than 3f+1, an epoch took it out of the candidates`)
  console.log(`${count} schedules, ${violations} violations`)
  process.exit(failed > 0 ? 1 : 0)
}
