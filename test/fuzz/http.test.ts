// A short, fixed-seed run of raw requests against both HTTP servers in this process: no 5xx,
// a status for every well-formed request, the server still serving, nothing unhandled.
import { describe, it, expect } from 'vitest'
import { allTargets } from './targets/index.ts'
import { isAsync } from './engine/target.ts'
import { runTarget } from './engine/run-target.ts'
import { formatFailure } from './engine/report.ts'

const SEED = 20_260_401
const EXECS = 400

describe('both HTTP servers under raw mutated requests', () => {
  for (const target of allTargets().filter(isAsync)) {
    it(target.name, async () => {
      const report = await runTarget(target, { seed: SEED, execs: EXECS })
      expect(formatFailure(report)).toBe('')
      expect(report.execs).toBe(EXECS)
    })
  }
})
