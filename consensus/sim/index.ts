// The deterministic simulator of the BFT (see simulation.ts): the real engine under a seeded
// scheduler, with faults and Byzantine members, and the invariants checked after every step.
export { runSchedule, planOf, FAULTS_END_MS, PROGRESS_BOUND_MS } from './simulation.ts'
export type { ScheduleResult, SchedulePlan, ByzantinePlan } from './simulation.ts'
export { Prng } from './prng.ts'
export { Scheduler } from './scheduler.ts'
export { SimNetwork } from './network.ts'
export { ATTACKS } from './adversary.ts'
export type { Attack } from './adversary.ts'
export { BAD_CONTENT } from './world.ts'
export type { SimWorld, BadContent } from './world.ts'
