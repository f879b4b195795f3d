// Ed25519 and SHA-256 for browsers (no node:crypto there). Same signatures as the native
// module; the package.json "imports" map picks this file under the "browser" condition.
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'

export function randomSecretKey (): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32))
}

export function getPublicKey (secretKey: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(secretKey)
}

export function sign (secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, secretKey)
}

export function verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false
  try {
    return ed25519.verify(signature, message, publicKey)
  } catch {
    return false
  }
}

export function sha256 (data: Uint8Array): Uint8Array {
  return nobleSha256(data)
}

export function randomBytesOf (length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length))
}
