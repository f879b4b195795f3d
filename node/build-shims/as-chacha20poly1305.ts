// What @libp2p/noise uses of @chainsafe/as-chacha20poly1305, on node:crypto (OpenSSL) instead of
// a WebAssembly module compiled at every start; node/build.ts puts it in the bundle in the
// package's place. Same results: the sealed frame is the ciphertext followed by the 16-byte tag,
// and open() returns null when the tag does not verify.
import { createCipheriv, createDecipheriv } from 'node:crypto'

const TAG_LENGTH = 16

/** The package's WebAssembly instance: none is needed here. */
export function newInstance (): undefined {
  return undefined
}

export class ChaCha20Poly1305 {
  constructor (_instance?: unknown) {}

  seal (key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, associatedData?: Uint8Array, dst?: Uint8Array): Uint8Array {
    const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_LENGTH })
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
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_LENGTH })
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
