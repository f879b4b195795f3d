// A revocation: the network root key states "this member key is no longer a member". It is
// signed over canonical CBOR, so every node checks it with the root public key it already
// trusts, whoever relayed it.
//
// A revocation may carry `until`: the time after which every certificate the revoked key
// could still present has expired anyway, so the revocation can no longer matter and nodes
// may forget it (revocation lists are bounded). Revocations signed before `until` existed
// have none and are kept for good; they still decode and verify as before.
import { encodeCanonical, decodeCanonical, sign, verify } from '../crypto/index.ts'
import { isNetworkId } from './network-id.ts'
import { peerIdFromString } from '@libp2p/peer-id'

export class InvalidRevocationError extends Error {
  readonly name = 'InvalidRevocationError'
}

export interface Revocation {
  networkId: string
  peerId: string
  revokedAt: number
  /** after this time the revocation can no longer matter (absent: it is kept for good) */
  until?: number
  signature: Uint8Array
}

function signedPart (r: Omit<Revocation, 'signature'>): Uint8Array {
  // without `until` the signed bytes are exactly those of the first format
  return encodeCanonical(r.until === undefined
    ? { ctx: 'mycelium-revocation-v1', net: r.networkId, peer: r.peerId, at: r.revokedAt }
    : { ctx: 'mycelium-revocation-v1', net: r.networkId, peer: r.peerId, at: r.revokedAt, until: r.until })
}

export function signRevocation (rootSecretKey: Uint8Array, networkId: string, peerId: string, revokedAt: number, until?: number): Revocation {
  const unsigned = until === undefined ? { networkId, peerId, revokedAt } : { networkId, peerId, revokedAt, until }
  return { ...unsigned, signature: sign(rootSecretKey, signedPart(unsigned)) }
}

export function encodeRevocation (r: Revocation): Uint8Array {
  return encodeCanonical(r.until === undefined
    ? { net: r.networkId, peer: r.peerId, at: r.revokedAt, sig: r.signature }
    : { net: r.networkId, peer: r.peerId, at: r.revokedAt, until: r.until, sig: r.signature })
}

/** Decodes and verifies a revocation of this network: anything else throws. */
export function decodeRevocation (bytes: Uint8Array, networkId: string, rootPublicKey: Uint8Array): Revocation {
  let raw: Record<string, unknown>
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
  } catch (err) {
    throw new InvalidRevocationError(`revocation is not decodable: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidRevocationError('revocation has the wrong shape')
  const keys = Object.keys(raw)
  if (!(keys.length === 4 || (keys.length === 5 && 'until' in raw))) throw new InvalidRevocationError('revocation has the wrong shape')
  const { net, peer, at, until, sig } = raw
  if (!isNetworkId(net) || net !== networkId) throw new InvalidRevocationError('revocation is for another network')
  if (typeof peer !== 'string' || peer.length > 128) throw new InvalidRevocationError('revocation names no peer')
  try { peerIdFromString(peer) } catch { throw new InvalidRevocationError('revocation names no valid peer id') }
  if (!Number.isSafeInteger(at) || !(sig instanceof Uint8Array) || sig.length !== 64) throw new InvalidRevocationError('revocation fields are malformed')
  if (until !== undefined && (!Number.isSafeInteger(until) || (until as number) <= (at as number))) throw new InvalidRevocationError('revocation has an invalid until')
  const revocation: Revocation = until === undefined
    ? { networkId: net, peerId: peer, revokedAt: at as number, signature: sig }
    : { networkId: net, peerId: peer, revokedAt: at as number, until: until as number, signature: sig }
  if (!verify(rootPublicKey, signedPart(revocation), sig)) throw new InvalidRevocationError('revocation is not signed by this network\'s root key')
  return revocation
}
