// An operator grant: the network root key states "the member key <operator> may sign
// application bundles and plans of this network, until T". The root key stays offline on the
// administrator's machine while a delegated operator deploys; an entry or bundle carries the
// grant so any member checks it with nothing but the network's root public key. Browser-safe.
import { encodeCanonical, decodeCanonical, sign, verify, toBase64Url, fromBase64Url, publicKeyOfPeerId, getPublicKey } from '../crypto/index.ts'
import { isNetworkId, networkIdOf } from './network-id.ts'

export const OPERATOR_GRANT_PREFIX = 'mycop1.'
export const MAX_OPERATOR_GRANT_BYTES = 384
/** Room for members whose clock runs ahead of the administrator's. */
const ISSUED_SKEW_MS = 60_000

export class InvalidOperatorGrantError extends Error {
  readonly name = 'InvalidOperatorGrantError'
}

export interface OperatorGrant {
  networkId: string
  /** the delegated operator's peer id */
  operator: string
  issuedAt: number
  expiresAt: number
  signature: Uint8Array
}

function signedPart (g: Omit<OperatorGrant, 'signature'>): Uint8Array {
  return encodeCanonical({ ctx: 'mycelium-operator-grant-v1', net: g.networkId, op: g.operator, iat: g.issuedAt, exp: g.expiresAt })
}

export function signOperatorGrant (rootSecretKey: Uint8Array, options: { operator: string, issuedAt: number, ttlMs: number }): OperatorGrant {
  publicKeyOfPeerId(options.operator)
  if (!(options.ttlMs > 0)) throw new InvalidOperatorGrantError('an operator grant must last some time')
  const unsigned = { networkId: networkIdOf(getPublicKey(rootSecretKey)), operator: options.operator, issuedAt: options.issuedAt, expiresAt: options.issuedAt + options.ttlMs }
  return { ...unsigned, signature: sign(rootSecretKey, signedPart(unsigned)) }
}

export function encodeOperatorGrant (g: OperatorGrant): Uint8Array {
  return encodeCanonical({ net: g.networkId, op: g.operator, iat: g.issuedAt, exp: g.expiresAt, sig: g.signature })
}

/** Decodes a grant's form only; operatorGrantAdmits checks the root signature, whom and when. */
export function decodeOperatorGrant (bytes: Uint8Array): OperatorGrant {
  if (bytes.length > MAX_OPERATOR_GRANT_BYTES) throw new InvalidOperatorGrantError('operator grant is too long')
  let raw: Record<string, unknown>
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
  } catch (err) {
    throw new InvalidOperatorGrantError(`operator grant is not decodable: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || Object.keys(raw).length !== 5) throw new InvalidOperatorGrantError('operator grant has the wrong shape')
  const { net, op, iat, exp, sig } = raw
  if (!isNetworkId(net)) throw new InvalidOperatorGrantError('operator grant has no valid network id')
  if (typeof op !== 'string' || op.length > 128) throw new InvalidOperatorGrantError('operator grant names no operator')
  try { publicKeyOfPeerId(op) } catch { throw new InvalidOperatorGrantError('operator grant names no valid peer id') }
  if (!Number.isSafeInteger(iat) || !Number.isSafeInteger(exp) || (exp as number) <= (iat as number)) throw new InvalidOperatorGrantError('operator grant has invalid validity times')
  if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new InvalidOperatorGrantError('operator grant signature is malformed')
  return { networkId: net, operator: op, issuedAt: iat as number, expiresAt: exp as number, signature: sig }
}

/** True when `grant` (encoded) is the root's, for `operator`, valid at `at`. Never throws. */
export function operatorGrantAdmits (grant: Uint8Array, expected: { rootPublicKey: Uint8Array, operator: string, at: number }): boolean {
  let g: OperatorGrant
  try {
    g = decodeOperatorGrant(grant)
  } catch {
    return false
  }
  return g.networkId === networkIdOf(expected.rootPublicKey) && g.operator === expected.operator &&
    expected.at >= g.issuedAt - ISSUED_SKEW_MS && expected.at < g.expiresAt &&
    verify(expected.rootPublicKey, signedPart(g), g.signature)
}

/** The text form the administrator hands to the operator. */
export function operatorGrantToken (g: OperatorGrant): string {
  return OPERATOR_GRANT_PREFIX + toBase64Url(encodeOperatorGrant(g))
}

export function decodeOperatorGrantToken (token: string): Uint8Array {
  const text = token.trim()
  if (!text.startsWith(OPERATOR_GRANT_PREFIX)) throw new InvalidOperatorGrantError(`an operator grant starts with "${OPERATOR_GRANT_PREFIX}"`)
  if (text.length > MAX_OPERATOR_GRANT_BYTES * 2) throw new InvalidOperatorGrantError('operator grant is too long')
  let bytes: Uint8Array
  try { bytes = fromBase64Url(text.slice(OPERATOR_GRANT_PREFIX.length)) } catch { throw new InvalidOperatorGrantError('operator grant is malformed (was it copied whole?)') }
  decodeOperatorGrant(bytes)
  return bytes
}
