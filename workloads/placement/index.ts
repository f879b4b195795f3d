// Placement of application instances: the same deterministic answer on every node.
export { rankHosts, hostsOf, decide, credibleSightings, wanted, unfitReason, normalizeArch, DEFAULT_ROLES } from './placement.ts'
export type { PlacementPlan, PlacementNode, InstanceSighting, PlacementAction, Arch } from './placement.ts'
export { rollout, rolloutAction } from './rollout.ts'
export type { Rollout, RolloutStep } from './rollout.ts'
