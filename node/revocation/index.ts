// Revocation of network members: signed by the root key, spread by gossip and on every new
// connection, kept by every node, enforced by the membership handshake and the gater.
export { signRevocation, encodeRevocation, decodeRevocation, InvalidRevocationError } from '../../membership/index.ts'
export type { Revocation } from '../../membership/index.ts'
export { RevocationList, RevocationListFullError, MAX_REVOCATIONS } from './revocation-list.ts'
export { revocationUntil, REVOCATION_CLOCK_MARGIN_MS } from './revocation-until.ts'
export { RevocationExchange, revocationTopic, revocationProtocol } from './revocation-exchange.ts'
export type { RevocationExchangeOptions } from './revocation-exchange.ts'
export { revocationFeature, revokeOffline, signRevocationWithHome, revocationJson, RevocationRefusedError } from './revocation-feature.ts'
