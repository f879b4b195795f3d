// `npm run sim:scale [-- --nodes N[,N…]] [--seconds S] [--seed X] [--session-minutes M] [--budget-minutes B]`:
// the scale model of roles and spores (test/sim/scale) for each N (default 200, 1,000 and
// 10,000), one after another, and one table of the figures. A run that reaches its wall-clock
// budget (default 20 min) or 85 % of the heap stops and reports how far it got; the same seed
// gives the same figures.
import { runScaleModel, formatReports, type ScaleReport } from './scale/index.ts'

function arg (name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1]
}

const sizes = (arg('--nodes') ?? '200,1000,10000').split(',').map(Number)
const seconds = Number(arg('--seconds') ?? 150)
const seed = Number(arg('--seed') ?? 1)
const sessionMinutes = Number(arg('--session-minutes') ?? 60)
const budgetMinutes = Number(arg('--budget-minutes') ?? 20)
if (sizes.some(n => !Number.isSafeInteger(n) || n < 4) || !(seconds >= 90) || !Number.isSafeInteger(seed) || !(sessionMinutes > 0) || !(budgetMinutes > 0)) {
  console.error('usage: npm run sim:scale -- [--nodes N[,N…]] [--seconds S ≥ 90] [--seed X] [--session-minutes M] [--budget-minutes B]')
  process.exit(2)
}

const reports: ScaleReport[] = []
for (const nodes of sizes) {
  console.error(`N = ${nodes}: simulating ${seconds} s (seed ${seed}, budget ${budgetMinutes} min)…`)
  const r = await runScaleModel({
    nodes,
    seconds,
    seed,
    sessionMinutes,
    budgetMs: budgetMinutes * 60_000,
    onProgress: (p) => { console.error(`  ${p.simulatedS} s simulated in ${p.wallS.toFixed(0)} s: ${p.live} live, ${p.sclerotia} sclerotia, heap ${p.heapMiB.toFixed(0)} MiB`) }
  })
  reports.push(r)
  if (r.stopped !== undefined) console.error(`N = ${nodes}: stopped after ${r.simulatedSeconds} of ${r.seconds} virtual seconds: ${r.stopped}`)
}
console.log(formatReports(reports))
for (const r of reports) if (r.stopped !== undefined) console.log(`N = ${r.nodes}: stopped after ${r.simulatedSeconds} of ${r.seconds} virtual seconds, ${r.stopped}; its figures cover only that part`)
process.exit(0)
