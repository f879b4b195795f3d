// A bridge grant: the root key of the network a bridge speaks into states "the member key
// <bridge> may forward messages of network <origin> into this network, until T". Without it a
// member's claim to carry another network's messages is only its own word, so receivers show
// such messages as that member's own. Whoever holds the grant presents it with every bridged
// message; it carries the root public key, whose hash is the network id, so any member checks
// it with nothing but its own network id, whoever relayed the message. Browser-safe.
import { encodeCanonical, decodeCanonical, sign, verify, toBase64Url, fromBase64Url, publicKeyOfPeerId, getPublicKey } from '../crypto/index.ts'
import { isNetworkId, networkIdOf } from './network-id.ts'

export const BRIDGE_GRANT_PREFIX = 'mycb1.'
const MAX_GRANT_BYTES = 512
/** Room for members whose clock runs ahead of the administrator's. */
const ISSUED_SKEW_MS = 60_000

export class InvalidBridgeGrantError extends Error {
  readonly name = 'InvalidBridgeGrantError'
}

export interface BridgeGrant {
  /** the network the bridge speaks into, whose root signed the grant */
  networkId: string
  rootPublicKey: Uint8Array
  /** the bridge's peer id in that network */
  bridge: string
  /** the network whose messages the bridge may carry in */
  origin: string
  issuedAt: number
  expiresAt: number
  signature: Uint8Array
}

function signedPart (g: Omit<BridgeGrant, 'signature'>): Uint8Array {
  return encodeCanonical({ ctx: 'mycelium-bridge-grant-v1', net: g.networkId, root: g.rootPublicKey, bridge: g.bridge, origin: g.origin, iat: g.issuedAt, exp: g.expiresAt })
}

export function signBridgeGrant (rootSecretKey: Uint8Array, options: { bridge: string, origin: string, issuedAt: number, ttlMs: number }): BridgeGrant {
  const rootPublicKey = getPublicKey(rootSecretKey)
  const unsigned = { networkId: networkIdOf(rootPublicKey), rootPublicKey, bridge: options.bridge, origin: options.origin, issuedAt: options.issuedAt, expiresAt: options.issuedAt + options.ttlMs }
  if (!isNetworkId(unsigned.origin) || unsigned.origin === unsigned.networkId) throw new InvalidBridgeGrantError('a bridge grant names another network as origin')
  publicKeyOfPeerId(unsigned.bridge)
  return { ...unsigned, signature: sign(rootSecretKey, signedPart(unsigned)) }
}

export function encodeBridgeGrant (g: BridgeGrant): Uint8Array {
  return encodeCanonical({ net: g.networkId, root: g.rootPublicKey, bridge: g.bridge, origin: g.origin, iat: g.issuedAt, exp: g.expiresAt, sig: g.signature })
}

/** Decodes a grant and checks its form and root signature; whom and when it admits is the caller's (grantAdmits). */
export function decodeBridgeGrant (bytes: Uint8Array): BridgeGrant {
  if (bytes.length > MAX_GRANT_BYTES) throw new InvalidBridgeGrantError('bridge grant is too long')
  let raw: Record<string, unknown>
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
  } catch (err) {
    throw new InvalidBridgeGrantError(`bridge grant is not decodable: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || Object.keys(raw).length !== 7) throw new InvalidBridgeGrantError('bridge grant has the wrong shape')
  const { net, root, bridge, origin, iat, exp, sig } = raw
  if (!isNetworkId(net) || !(root instanceof Uint8Array) || root.length !== 32 || networkIdOf(root) !== net) throw new InvalidBridgeGrantError('bridge grant root key does not match its network id')
  if (!isNetworkId(origin) || origin === net) throw new InvalidBridgeGrantError('bridge grant names no other network')
  if (typeof bridge !== 'string' || bridge.length > 128) throw new InvalidBridgeGrantError('bridge grant names no bridge')
  try { publicKeyOfPeerId(bridge) } catch { throw new InvalidBridgeGrantError('bridge grant names no valid peer id') }
  if (!Number.isSafeInteger(iat) || !Number.isSafeInteger(exp) || (exp as number) <= (iat as number)) throw new InvalidBridgeGrantError('bridge grant has invalid validity times')
  if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new InvalidBridgeGrantError('bridge grant signature is malformed')
  const grant: BridgeGrant = { networkId: net, rootPublicKey: root, bridge, origin, issuedAt: iat as number, expiresAt: exp as number, signature: sig }
  if (!verify(root, signedPart(grant), sig)) throw new InvalidBridgeGrantError('bridge grant is not signed by its network\'s root key')
  return grant
}

/** True when the grant lets `bridge` carry messages of `origin` into `networkId` at `now`. */
export function grantAdmits (grant: BridgeGrant, expected: { networkId: string, bridge: string, origin: string, now: number }): boolean {
  return grant.networkId === expected.networkId && grant.bridge === expected.bridge && grant.origin === expected.origin &&
    expected.now >= grant.issuedAt - ISSUED_SKEW_MS && expected.now < grant.expiresAt
}

/** The text form the administrator hands to the bridge's operator. */
export function bridgeGrantToken (g: BridgeGrant): string {
  return BRIDGE_GRANT_PREFIX + toBase64Url(encodeBridgeGrant(g))
}

export function decodeBridgeGrantToken (token: string): BridgeGrant {
  const text = token.trim()
  if (!text.startsWith(BRIDGE_GRANT_PREFIX)) throw new InvalidBridgeGrantError(`a bridge grant starts with "${BRIDGE_GRANT_PREFIX}"`)
  if (text.length > MAX_GRANT_BYTES * 2) throw new InvalidBridgeGrantError('bridge grant is too long')
  let bytes: Uint8Array
  try { bytes = fromBase64Url(text.slice(BRIDGE_GRANT_PREFIX.length)) } catch { throw new InvalidBridgeGrantError('bridge grant is malformed (was it copied whole?)') }
  return decodeBridgeGrant(bytes)
}
