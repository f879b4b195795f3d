// The bundle gives @libp2p/noise node:crypto in place of the WebAssembly ChaCha20-Poly1305 and
// SHA-256 packages (node/build.ts): a bundled node must seal and open exactly what a node run
// from the sources does, and refuse what they refuse.
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { describe, it, expect } from 'vitest'
import { ChaCha20Poly1305, newInstance } from '../../node/build-shims/as-chacha20poly1305.ts'
import { digest } from '../../node/build-shims/as-sha256.ts'

const require = createRequire(import.meta.url)
const wasmChaCha = require('@chainsafe/as-chacha20poly1305') as { newInstance: () => unknown, ChaCha20Poly1305: new (ctx: unknown) => ChaCha20Poly1305 }
const wasmSha = require('@chainsafe/as-sha256') as { digest: (data: Uint8Array) => Uint8Array }

describe('noise on node:crypto in the bundle', () => {
  const wasm = new wasmChaCha.ChaCha20Poly1305(wasmChaCha.newInstance())
  const native = new ChaCha20Poly1305(newInstance())

  it('seals byte for byte as the WebAssembly build and opens what it sealed', () => {
    for (const length of [0, 1, 15, 16, 17, 100, 1199, 70_000]) {
      const key = randomBytes(32)
      const nonce = randomBytes(12)
      const ad = randomBytes(32)
      const plaintext = randomBytes(length)
      const sealed = native.seal(key, nonce, plaintext, ad)
      expect(Buffer.from(sealed).equals(Buffer.from(wasm.seal(key, nonce, plaintext, ad)))).toBe(true)
      expect(Buffer.from(wasm.open(key, nonce, sealed, ad)!).equals(plaintext)).toBe(true)
      const dst = new Uint8Array(length)
      expect(native.open(key, nonce, sealed, ad, dst)).toBe(dst)
      expect(Buffer.from(dst).equals(plaintext)).toBe(true)
    }
  })

  it('seals with the key array\'s current bytes when the same array is reused or changed in place', () => {
    const key = randomBytes(32)
    const nonce = randomBytes(12)
    const plaintext = randomBytes(100)
    for (let i = 0; i < 3; i++) {
      expect(Buffer.from(native.seal(key, nonce, plaintext)).equals(Buffer.from(wasm.seal(key, nonce, plaintext)))).toBe(true)
      const sealed = wasm.seal(key, nonce, plaintext)
      expect(Buffer.from(native.open(key, nonce, sealed)!).equals(plaintext)).toBe(true)
      key[i] ^= 0xff
    }
  })

  it('refuses a frame whose ciphertext, tag or associated data was changed', () => {
    const key = randomBytes(32)
    const nonce = randomBytes(12)
    const ad = randomBytes(32)
    const sealed = native.seal(key, nonce, randomBytes(64), ad)
    for (const at of [0, sealed.length - 1]) {
      const tampered = Uint8Array.from(sealed)
      tampered[at] ^= 1
      expect(native.open(key, nonce, tampered, ad)).toBeNull()
      expect(wasm.open(key, nonce, tampered, ad)).toBeNull()
    }
    expect(native.open(key, nonce, sealed, randomBytes(32))).toBeNull()
    expect(native.open(key, nonce, sealed.subarray(0, 8), ad)).toBeNull()
  })

  it('hashes as the WebAssembly SHA-256', () => {
    for (const length of [0, 55, 64, 1000]) {
      const data = randomBytes(length)
      expect(Buffer.from(digest(data)).equals(Buffer.from(wasmSha.digest(data)))).toBe(true)
    }
  })
})
