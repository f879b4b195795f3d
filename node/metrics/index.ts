export { NodeMetrics } from './node-metrics.ts'
