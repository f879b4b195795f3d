// Bridging: a node that is a member of two networks forwards allow-listed application
// topics between them, labelled with their origin, rate-limited and removable.
export { bridgeFeature, DEFAULT_BRIDGE_RATE_PER_S } from './bridge-feature.ts'
export { Bridge } from './bridge.ts'
export type { BridgeView, BridgeSide, DirectionStats } from './bridge.ts'
export { BridgeBook } from './bridge-book.ts'
export type { BridgeRecord } from './bridge-book.ts'
export { TokenBucket, parseRate, InvalidRateError } from './token-bucket.ts'
export { BridgeGrants, BridgeGrantMismatchError } from './bridge-grants.ts'
export { ServiceRecordGate } from './service-gate.ts'
