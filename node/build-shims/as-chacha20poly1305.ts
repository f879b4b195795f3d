// What @libp2p/noise uses of @chainsafe/as-chacha20poly1305, on node:crypto (OpenSSL) instead of
// a WebAssembly module compiled at every start; node/build.ts puts it in the bundle in the
// package's place. Same results: the sealed frame is the ciphertext followed by the 16-byte tag,
// and open() returns null when the tag does not verify.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'

const TAG_LENGTH = 16

/**
 * A noise session seals and opens every frame with the same key array. createCipheriv with raw
 * key bytes makes a KeyObject per call, which cost more than sealing a small frame (a 200-byte
 * frame: ~50 k/s with raw bytes, ~130 k/s with a KeyObject made once); an idle node's traffic is
 * such frames. The KeyObject is kept per key array and used only while the array still holds
 * the bytes it was made from, so a key changed in place is never used stale.
 */
const keyObjects = new WeakMap<Uint8Array, { bytes: Buffer, key: KeyObject }>()

function keyObjectOf (key: Uint8Array): KeyObject {
  const held = keyObjects.get(key)
  if (held !== undefined && held.bytes.equals(key)) return held.key
  const bytes = Buffer.from(key)
  const made = { bytes, key: createSecretKey(bytes) }
  keyObjects.set(key, made)
  return made.key
}

/** The package's WebAssembly instance: none is needed here. */
export function newInstance (): undefined {
  return undefined
}

export class ChaCha20Poly1305 {
  constructor (_instance?: unknown) {}

  seal (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, associatedData?: Uint8Array, dst?: Uint8Array): Uint8Array {
    const cipher = createCipheriv('chacha20-poly1305', keyObjectOf(key), nonce, { authTagLength: TAG_LENGTH })
    if (associatedData !== undefined) cipher.setAAD(associatedData, { plaintextLength: plaintext.byteLength })
    const sealed = dst ?? new Uint8Array(plaintext.byteLength + TAG_LENGTH)
    sealed.set(cipher.update(plaintext))
    cipher.final()
    sealed.set(cipher.getAuthTag(), plaintext.byteLength)
    return sealed
  }

  open (key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, associatedData?: Uint8Array, dst?: Uint8Array): Uint8Array | null {
    const length = sealed.byteLength - TAG_LENGTH
    if (length < 0) return null
    const decipher = createDecipheriv('chacha20-poly1305', keyObjectOf(key), nonce, { authTagLength: TAG_LENGTH })
    if (associatedData !== undefined) decipher.setAAD(associatedData, { plaintextLength: length })
    decipher.setAuthTag(sealed.subarray(length))
    const plaintext = decipher.update(sealed.subarray(0, length))
    try {
      decipher.final()
    } catch {
      return null
    }
    if (dst === undefined) return plaintext
    dst.set(plaintext)
    return dst
  }
}
