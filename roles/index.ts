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
