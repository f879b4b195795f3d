export { createNetwork, createInvite, admitter, defaultNetworkName, MEMBER_CERTIFICATE_TTL_MS } from './network.ts'
export type { InviteOptions } from './network.ts'
export { joinNetwork } from './join.ts'
export type { JoinResult } from './join.ts'
