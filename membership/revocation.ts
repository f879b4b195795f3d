// A revocation: the network root key states "this member key is no longer a member". It is
// signed over canonical CBOR, so every node checks it with the root public key it already
// trusts, whoever relayed it.
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
  signature: Uint8Array
}

function signedPart (r: Omit<Revocation, 'signature'>): Uint8Array {
  return encodeCanonical({ ctx: 'mycelium-revocation-v1', net: r.networkId, peer: r.peerId, at: r.revokedAt })
}

export function signRevocation (rootSecretKey: Uint8Array, networkId: string, peerId: string, revokedAt: number): Revocation {
  const unsigned = { networkId, peerId, revokedAt }
  return { ...unsigned, signature: sign(rootSecretKey, signedPart(unsigned)) }
}

export function encodeRevocation (r: Revocation): Uint8Array {
  return encodeCanonical({ net: r.networkId, peer: r.peerId, at: r.revokedAt, sig: r.signature })
}

/** Decodes and verifies a revocation of this network: anything else throws. */
export function decodeRevocation (bytes: Uint8Array, networkId: string, rootPublicKey: Uint8Array): Revocation {
  let raw: Record<string, unknown>
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
  } catch (err) {
    throw new InvalidRevocationError(`revocation is not decodable: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Object.keys(raw).length !== 4) throw new InvalidRevocationError('revocation has the wrong shape')
  const { net, peer, at, sig } = raw
  if (!isNetworkId(net) || net !== networkId) throw new InvalidRevocationError('revocation is for another network')
  if (typeof peer !== 'string' || peer.length > 128) throw new InvalidRevocationError('revocation names no peer')
  try { peerIdFromString(peer) } catch { throw new InvalidRevocationError('revocation names no valid peer id') }
  if (!Number.isSafeInteger(at) || !(sig instanceof Uint8Array) || sig.length !== 64) throw new InvalidRevocationError('revocation fields are malformed')
  const revocation = { networkId: net, peerId: peer, revokedAt: at as number, signature: sig }
  if (!verify(rootPublicKey, signedPart(revocation), sig)) throw new InvalidRevocationError('revocation is not signed by this network\'s root key')
  return revocation
}
