// The BFT simulator in the suite: a few dozen seeded schedules of the real engine under
// delay, loss, duplication, reordering, partitions, crashes with restarts, and up to f
// Byzantine members (consensus/sim). Each schedule checks after every step that no epoch has
// two certificates, that every certified epoch is valid under the content rules, that no
// honest member is slashed or taken out of the candidates, and that every honest member
// certifies a new epoch within the bound after the network heals. `npm run sim:bft` runs 10,000 of them; a failing seed
// replays exactly with `npm run sim:bft -- --seed S`.
import { describe, it, expect } from 'vitest'
import { runSchedule, planOf } from '../../consensus/sim/index.ts'
import { sporesWorld } from '../sim/spores-world.ts'

const SCHEDULES = 24
// A fixed window of seeds: the suite is reproducible (a schedule replays exactly), and
// exploring further is what `npm run sim:bft` is for. The seed of a failure is in the message.
const FIRST = 1_000_000
// Seeds on which `sim:bft` once found a bug: 40 (late commitments were never counted, so no
// progress after the heal) and 500 (a restarted node did not serve its anchor epoch).
const FOUND = [40, 500]

describe('BFT simulator', () => {
  it('replays a schedule exactly from its seed', async () => {
    const a = await runSchedule(7, sporesWorld)
    const b = await runSchedule(7, sporesWorld)
    expect(b.log).toEqual(a.log)
    expect(b.steps).toBe(a.steps)
    expect(b.epochs).toBe(a.epochs)
    expect(a.epochs).toBeGreaterThan(5)
  }, 60_000)

  it(`finds no violation in ${SCHEDULES} schedules and the seeds that once found bugs, with faults and Byzantine members`, async () => {
    const failures: string[] = []
    let byzantine = 0
    let epochs = 0
    for (const seed of [...FOUND, ...Array.from({ length: SCHEDULES }, (_, i) => FIRST + i)]) {
      const r = await runSchedule(seed, sporesWorld)
      epochs += r.epochs
      byzantine += r.plan.byzantine.length
      if (r.violations.length > 0) failures.push(`seed ${seed}: ${r.violations.join('; ')}`)
    }
    expect(failures).toEqual([])
    // The schedules did exercise something: epochs were certified, Byzantine members took part.
    expect(epochs).toBeGreaterThan(SCHEDULES * 5)
    expect(byzantine).toBeGreaterThan(SCHEDULES / 4)
  }, 540_000)

  it('an equivocator among five members (f = 1) is taken out of the candidates by a certified exclusion, and nobody else', async () => {
    // seeds whose plan is five members with one equivocating member (planOf)
    for (const seed of [34, 609]) {
      const r = await runSchedule(seed, sporesWorld)
      expect(r.plan.members).toBe(5)
      expect(r.plan.byzantine.map(b => b.conduct)).toEqual(['equivocate'])
      expect(r.violations).toEqual([])
      expect(r.log.some(l => l.includes('writes an exclusion'))).toBe(true)
      // every honest member's latest epoch names all but the equivocator (the invariants
      // checked after every step that no epoch took an honest member out)
      expect(r.excluded).toHaveLength(1)
    }
  }, 120_000)

  it('plans up to f Byzantine members per committee, with every attack drawn', () => {
    const attacks = new Set<string>()
    const conducts = new Set<string>()
    for (let seed = 1; seed <= 300; seed++) {
      const p = planOf(seed)
      expect(p.byzantine.length).toBeLessThanOrEqual(p.f)
      expect(p.members).toBeGreaterThanOrEqual(3 * p.f + 1)
      for (const b of p.byzantine) { b.attacks.forEach(a => attacks.add(a)); conducts.add(b.conduct) }
    }
    expect([...attacks].sort()).toEqual(['bad-content', 'equivocate-proposal', 'flood-attempts', 'forged-evidence'])
    expect(conducts.size).toBe(7)
  })
})
