// Roles: a node measures its hardware and its place in the network, decides what it can
// give (sclerotium, rhizomorph, hyphae), balances that with the rest of the network, and
// behaves accordingly at runtime.
export type { HardwareFacts, NetworkFacts, NetworkInterfaceFacts, LinkType } from './probe/hardware-facts.ts'
export { unmeasuredNetwork } from './probe/hardware-facts.ts'
export { probeHardware, DEFAULT_PROBE_TIMEOUT_MS } from './probe/hardware-probe.ts'
export type { HardwareProbeOptions } from './probe/hardware-probe.ts'
export { kvmUsable } from './probe/kvm.ts'
export { BUILT_IN_PROFILES, isBuiltInProfileName } from './probe/hardware-profiles.ts'
export type { BuiltInProfileName } from './probe/hardware-profiles.ts'
export { measureHardware, loadHardwareProfile, parseHardwareProfile, hardwareProfileFromEnv, profiledNetwork, HardwareProfileError, HARDWARE_PROFILE_ENV } from './probe/hardware-profile.ts'
export type { HardwareProfile, MeasureHardwareOptions } from './probe/hardware-profile.ts'

export { ROLES, roleRank, isRole, isRoleOverride } from './policy/role.ts'
export type { Role, RoleOverride, SclerotiumFit } from './policy/role.ts'
export { THRESHOLDS } from './policy/thresholds.ts'
export type { Thresholds } from './policy/thresholds.ts'
export { decideRole } from './policy/role-decision.ts'
export type { RoleDecision, DecideRoleOptions } from './policy/role-decision.ts'
export { nextRoleState, canChangeRole, HOLD, DEFAULT_HYSTERESIS_MS } from './policy/role-transition.ts'
export type { RoleState, BalanceAdvice, RoleTransition } from './policy/role-transition.ts'

export { balanceAdvice, sclerotiumTarget, promotionOrder, DEFAULT_BALANCE } from './balance/sclerotium-balance.ts'
export type { BalanceOptions, BalanceMember, BalanceOutcome } from './balance/sclerotium-balance.ts'
export { encodeRoleAdvertisement, decodeRoleAdvertisement, InvalidRoleAdvertisementError, MAX_ADVERTISEMENT_BYTES } from './balance/role-advertisement.ts'
export type { RoleAdvertisement } from './balance/role-advertisement.ts'
export { RoleView } from './balance/role-view.ts'
export type { RoleViewOptions, Acceptance } from './balance/role-view.ts'

export { NetworkProbe, networkProbe, ProbeRefusedError } from './measure/network-probe.ts'
export type { NetworkProbeInit, NetworkProbeComponents, RttMeasurement, ThroughputMeasurement } from './measure/network-probe.ts'
export { encodeProbeRequest, decodeProbeRequest, InvalidProbeMessageError, MAX_DOWNLOAD_BYTES, MAX_ECHO_ROUNDS, MAX_DIAL_BACK_ADDRS } from './measure/probe-messages.ts'
export type { ProbeRequest, DialBackResult } from './measure/probe-messages.ts'
export { measureNetwork } from './measure/network-measurement.ts'
export type { MeasureNetworkOptions } from './measure/network-measurement.ts'

export { RelaySwitch, relaySwitch, DEFAULT_RELAY_LIMITS } from './behaviour/relay-switch.ts'
export type { RelayMode, RelaySwitchInit } from './behaviour/relay-switch.ts'
export { behaviourOf } from './behaviour/role-behaviour.ts'
export type { RoleBehaviour, DhtMode } from './behaviour/role-behaviour.ts'
export { libp2pRoleEffects } from './behaviour/role-effects.ts'
export type { RoleEffects, Libp2pRoleParts } from './behaviour/role-effects.ts'
export { RoleController, RoleEffectError } from './behaviour/role-controller.ts'
export type { RoleControllerOptions, Anchors } from './behaviour/role-controller.ts'
export { AnchorKeeper } from './behaviour/anchor-keeper.ts'
export type { AnchorKeeperOptions, AnchorCandidate } from './behaviour/anchor-keeper.ts'
export { RoleGossip } from './balance/role-gossip.ts'
export type { RoleGossipOptions, OwnAdvertisement } from './balance/role-gossip.ts'

export { probeBattery } from './probe/hardware-probe.ts'
export { RoleService, RoleNotStartedError } from './role-service.ts'
export { roleTiming, parseRoleTiming, roleTimingFromEnv, RoleTimingError, ROLE_TIMING_ENV } from './role-timing.ts'
export type { RoleTiming } from './role-timing.ts'
export type { RoleServiceOptions, RoleStatus } from './role-service.ts'
export { roleMetrics } from './role-metrics.ts'
export type { RoleMetrics } from './role-metrics.ts'
export { roleReport, assessRole } from './role-report.ts'
export type { RoleReport, AssessRoleOptions } from './role-report.ts'
export { silentLogger } from './role-host.ts'
export type { RoleHost, RolePubsub, RoleLogger } from './role-host.ts'

/** Protocol id of the probe protocol under a network's protocol prefix (`/mycelium/<networkId>`). */
export function probeProtocol (protocolPrefix: string): string {
  return `${protocolPrefix}/probe/1.0.0`
}

/** Gossip topic of role advertisements under a network's topic prefix (`mycelium/<networkId>`). */
export function rolesTopic (topicPrefix: string): string {
  return `${topicPrefix}/roles/1`
}
export { createRoleService } from './role-node.ts'
export type { RoleNode, CreateRoleServiceOptions } from './role-node.ts'
