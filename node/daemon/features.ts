// The features the daemon assembles, in start order. Add a feature here with one line.
import type { DaemonConfig } from './config.ts'
import type { DaemonFeature } from './feature.ts'
import { revocationFeature } from '../revocation/index.ts'
import { browserClientFeature } from '../browser/index.ts'
import { bridgeFeature } from '../bridge/index.ts'
import { rolesFeature } from '../roles/index.ts'
import { sporesFeature } from '../spores/index.ts'
import { consensusFeature, consensusEpochVerifier, consensusMinCandidates } from '../consensus/index.ts'
import { vmFeature } from '../vm/index.ts'
import { workloadsFeature } from '../workloads/index.ts'

export function daemonFeatures (_config: DaemonConfig): DaemonFeature[] {
  const roles = rolesFeature()
  const spores = sporesFeature({ epochVerifier: consensusEpochVerifier, minCandidates: consensusMinCandidates })
  const workloads = workloadsFeature({ spores })
  return [
    roles,
    revocationFeature(),
    browserClientFeature({ gateway: workloads.gateway }),
    bridgeFeature(),
    spores,
    consensusFeature({ spores, roleOf: roles.roleOf }),
    vmFeature(),
    workloads
  ]
}
