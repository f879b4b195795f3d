import type { Command } from '../command.ts'
import { start } from './start.ts'
import { status, peers, stop, metrics } from './status.ts'
import { networkCreate, networkShow, networkInvite, networkRejected, join } from './network.ts'
import { networkMembers, networkRevoke, networkExportKey, networkImportKey, networkRotateInvites } from './network-admin.ts'
import { bridgeAdd, bridgeList, bridgeRemove, dhtFindPeer } from './bridge.ts'
import { networkGrantBridge, bridgeGrant } from './bridge-grant.ts'
import { gossipSubscribe, gossipPublish, gossipMessages } from './gossip.ts'
import { role } from './role.ts'
import { networkApprove } from './browser.ts'
import { sporesLs, sporesStats, sporesExportSeed, sporesImportSeed, sporesQuarantine, sporesPublishService } from './spores.ts'
import { sporesEpochs, trust, trustEvidence } from './consensus.ts'
import { sporesReanchor } from './spores-reanchor.ts'
import { vmRun, vmLs, vmStatusCommand, vmMigrate, vmStop } from './vm.ts'
import { appPack, appPublish, appPlan, appRm, appLs, appStatus, appLogs, appUseGrant, networkGrantOperator } from './app.ts'

/** Every command of the CLI, in the order `mycelium --help` lists them. */
export const commands: Command[] = [
  start, status, peers, role, stop, metrics,
  networkCreate, networkShow, networkInvite, networkRejected, join,
  networkMembers, networkRevoke, networkExportKey, networkImportKey, networkRotateInvites, networkApprove, networkGrantBridge, networkGrantOperator,
  gossipSubscribe, gossipPublish, gossipMessages,
  bridgeAdd, bridgeGrant, bridgeList, bridgeRemove, dhtFindPeer,
  sporesLs, sporesStats, sporesExportSeed, sporesImportSeed, sporesQuarantine, sporesPublishService,
  sporesEpochs, sporesReanchor, trust, trustEvidence,
  vmRun, vmLs, vmStatusCommand, vmMigrate, vmStop,
  appPack, appPublish, appPlan, appLs, appStatus, appLogs, appRm, appUseGrant
]
