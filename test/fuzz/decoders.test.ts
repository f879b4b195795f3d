// A short, fixed-seed run of every decoder target (npm run fuzz runs them for minutes): no
// crash, no hang, valid input accepted and round-tripped. A failure prints the input (hex)
// and `npm run fuzz -- --target NAME --seed SEED` finds it again.
import { describe, it, expect, afterAll } from 'vitest'
import { allTargets } from './targets/index.ts'
import { removeScratchHome } from './targets/home.ts'
import { isAsync } from './engine/target.ts'
import { runTarget } from './engine/run-target.ts'
import { formatFailure } from './engine/report.ts'

const SEED = 20_260_401
const EXECS = 800

afterAll(removeScratchHome)

describe('every decoder reachable from the network or the disk, fuzzed briefly', () => {
  for (const target of allTargets().filter(t => !isAsync(t))) {
    it(target.name, async () => {
      const report = await runTarget(target, { seed: SEED, execs: EXECS })
      expect(formatFailure(report)).toBe('')
      expect(report.execs).toBeGreaterThanOrEqual(EXECS)
    })
  }
})
