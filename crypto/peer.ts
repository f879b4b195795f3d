// libp2p peer ids of Ed25519 keys embed the public key (identity multihash of the
// protobuf-encoded key), so a signature's origin can be checked from the peer id alone.
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'

export class InvalidPeerIdError extends Error {
  readonly name = 'InvalidPeerIdError'
}

export function peerIdOfPublicKey (publicKey: Uint8Array): string {
  return peerIdFromPublicKey(publicKeyFromRaw(publicKey)).toString()
}

/**
 * Longest peer id string parsed. An Ed25519 peer id is 52 characters in base58 (about 60 as a
 * CID); base58 decoding is quadratic, and a 130 KB "peer id" in an epoch certificate took a
 * minute of CPU before it was refused.
 */
export const MAX_PEER_ID_LENGTH = 128

/** The raw 32-byte Ed25519 key inside a peer id string; throws for other key types. */
export function publicKeyOfPeerId (peerId: string): Uint8Array {
  if (typeof peerId !== 'string' || peerId.length > MAX_PEER_ID_LENGTH) throw new InvalidPeerIdError(`not a peer id: ${typeof peerId === 'string' ? `${peerId.slice(0, 80)}… (${peerId.length} characters)` : typeof peerId}`)
  let parsed
  try {
    parsed = peerIdFromString(peerId)
  } catch {
    throw new InvalidPeerIdError(`not a peer id: ${peerId.slice(0, 80)}`)
  }
  if (parsed.type !== 'Ed25519' || parsed.publicKey === undefined) throw new InvalidPeerIdError(`not an Ed25519 peer id: ${peerId.slice(0, 80)}`)
  return parsed.publicKey.raw
}
