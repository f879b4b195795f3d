// Deterministic keys and clocks for the seeds, so a seed number reproduces the same inputs.
import { getPublicKey, peerIdOfPublicKey, sha256 } from '../../../crypto/index.ts'

export interface Key {
  secretKey: Uint8Array
  publicKey: Uint8Array
  peerId: string
}

export function keyOf (name: string): Key {
  const secretKey = sha256(new TextEncoder().encode(`mycelium-fuzz/${name}`))
  const publicKey = getPublicKey(secretKey)
  return { secretKey, publicKey, peerId: peerIdOfPublicKey(publicKey) }
}

export const NOW = 1_760_000_000_000

export const text = (s: string): Uint8Array => new TextEncoder().encode(s)
