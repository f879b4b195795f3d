// Every fuzz target, in the order `npm run fuzz` runs them.
import type { AnyTarget } from '../engine/target.ts'
import { sporeTargets } from './spores.ts'
import { consensusTargets } from './consensus.ts'
import { membershipTargets } from './membership.ts'
import { gossipRoleTargets } from './gossip-roles.ts'
import { ramTargets } from './ram.ts'
import { homeTargets } from './home.ts'
import { httpTargets } from './http.ts'

/**
 * The roster message (membership/roster.ts) is left out while its format is being changed.
 * Its target goes here: seeds from the roster's encoder, `decode` its decoder, in a file
 * targets/roster.ts like the others.
 */
export const rosterTargets: AnyTarget[] = []

export function allTargets (): AnyTarget[] {
  return [
    ...sporeTargets,
    ...consensusTargets,
    ...membershipTargets,
    ...rosterTargets,
    ...gossipRoleTargets,
    ...ramTargets,
    ...homeTargets,
    ...httpTargets
  ]
}
