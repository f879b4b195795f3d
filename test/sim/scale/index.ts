// The scale model of roles and spores: the real role balancing, spore merge and anti-entropy
// code of many nodes over a simulated transport, on one seeded virtual clock.
export { runScaleModel, WARMUP_MS } from './scale-model.ts'
export type { ScaleOptions } from './scale-model.ts'
export { formatReports } from './report.ts'
export type { ScaleReport } from './report.ts'
export { DEFAULT_LINKS } from './links.ts'
export type { LinkModel } from './links.ts'
