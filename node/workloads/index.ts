// Workloads on the daemon: bundles, plans, instances, endpoints and the /app/ gateway.
export { workloadsFeature } from './workloads-feature.ts'
export type { WorkloadsFeature } from './workloads-feature.ts'
export { saveOperatorGrant, loadOperatorGrant } from './operator-grant-file.ts'
