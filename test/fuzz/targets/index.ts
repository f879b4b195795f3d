// Every fuzz target, in the order `npm run fuzz` runs them.
import type { AnyTarget } from '../engine/target.ts'
import { sporeTargets } from './spores.ts'
import { consensusTargets } from './consensus.ts'
import { membershipTargets } from './membership.ts'
import { gossipRoleTargets } from './gossip-roles.ts'
import { ramTargets } from './ram.ts'
import { homeTargets } from './home.ts'
import { httpTargets } from './http.ts'
import { rosterTarget } from './roster.ts'
import { workloadTargets } from './workloads.ts'

export const rosterTargets: AnyTarget[] = [rosterTarget]

export function allTargets (): AnyTarget[] {
  return [
    ...sporeTargets,
    ...consensusTargets,
    ...membershipTargets,
    ...rosterTargets,
    ...gossipRoleTargets,
    ...ramTargets,
    ...workloadTargets,
    ...homeTargets,
    ...httpTargets
  ]
}
