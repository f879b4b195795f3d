// Signatures that checked out, remembered: the same signed bytes reach a node many times
// (every member re-validates every carried entry each epoch; gossip delivers duplicates), and
// an Ed25519 verification costs far more than hashing what was signed. Only successes are
// kept, keyed by the hash of key, signature and message together, so a hit means exactly this
// key signed exactly these bytes.
import { verify, sha256 } from '#ed25519'
import { toHex } from './encoding.ts'

const VERIFIED_MAX = 65_536
const verified = new Set<string>()

export function verifyRemembered (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const all = new Uint8Array(publicKey.length + signature.length + message.length)
  all.set(publicKey, 0)
  all.set(signature, publicKey.length)
  all.set(message, publicKey.length + signature.length)
  const id = toHex(sha256(all))
  if (verified.has(id)) return true
  if (!verify(publicKey, message, signature)) return false
  if (verified.size >= VERIFIED_MAX) verified.delete(verified.values().next().value as string)
  verified.add(id)
  return true
}
