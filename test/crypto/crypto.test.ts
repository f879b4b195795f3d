import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import * as native from '../../crypto/ed25519-native.ts'
import * as noble from '../../crypto/ed25519-noble.ts'
import { encodeCanonical, decodeCanonical, NonCanonicalEncodingError, MAX_CBOR_DEPTH, InvalidEncodingError, toBase64Url, fromBase64Url, toBase32, peerIdOfPublicKey, publicKeyOfPeerId, InvalidPeerIdError, MAX_PEER_ID_LENGTH, toHex, fromHex } from '../../crypto/index.ts'

describe('ed25519', () => {
  it('native and noble produce and accept the same signatures', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 200 }), (secret, msg) => {
      const pub = native.getPublicKey(secret)
      expect(noble.getPublicKey(secret)).toEqual(pub)
      const sig = native.sign(secret, msg)
      expect(noble.sign(secret, msg)).toEqual(sig)
      expect(noble.verify(pub, msg, sig)).toBe(true)
      expect(native.verify(pub, msg, sig)).toBe(true)
      const bad = sig.slice(); bad[0] ^= 1
      expect(native.verify(pub, msg, bad)).toBe(false)
      expect(noble.verify(pub, msg, bad)).toBe(false)
    }), { numRuns: 50 })
  })
  it('rejects malformed keys and signatures instead of throwing', () => {
    expect(native.verify(new Uint8Array(31), new Uint8Array(1), new Uint8Array(64))).toBe(false)
    expect(native.verify(new Uint8Array(32), new Uint8Array(1), new Uint8Array(63))).toBe(false)
  })
})

describe('canonical cbor', () => {
  it('round-trips and rejects non-canonical forms', () => {
    const v = { b: 1, a: [1, 2, new Uint8Array([1, 2])], c: 'x' }
    const bytes = encodeCanonical(v)
    expect(decodeCanonical(bytes)).toEqual(v)
    // 1 encoded as a two-byte integer is valid CBOR but not the shortest form
    expect(() => decodeCanonical(new Uint8Array([0x18, 0x01]))).toThrow(NonCanonicalEncodingError)
    expect(() => decodeCanonical(new Uint8Array([0xff]))).toThrow(NonCanonicalEncodingError)
  })

  it('refuses deep nesting with its named error (2,000 nested maps used to overflow the stack on re-encoding: a bare RangeError)', () => {
    const maps = new Uint8Array(2000 * 3 + 1)
    for (let i = 0; i < 2000; i++) maps.set([0xa1, 0x61, 0x61], i * 3)
    expect(() => decodeCanonical(maps)).toThrow(NonCanonicalEncodingError)
    expect(() => decodeCanonical(new Uint8Array(100_001).fill(0x81))).toThrow(NonCanonicalEncodingError)
    let nested: unknown = 1
    for (let i = 0; i < MAX_CBOR_DEPTH; i++) nested = [nested]
    expect(decodeCanonical(encodeCanonical(nested))).toEqual(nested)
    expect(() => decodeCanonical(encodeCanonical([nested]))).toThrow(NonCanonicalEncodingError)
  })
})

describe('encodings', () => {
  it('base64url, base32 and hex round-trip', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
      expect(fromBase64Url(toBase64Url(b))).toEqual(b)
      expect(fromHex(toHex(b))).toEqual(b)
      expect(toBase32(b)).toMatch(/^[a-z2-7]*$/)
    }))
    expect(() => fromBase64Url('a$b')).toThrow(InvalidEncodingError)
    // a named error, still a TypeError for callers written before it had a name
    expect(() => fromHex('zz')).toThrow(TypeError)
    expect(() => fromHex('abc')).toThrow(InvalidEncodingError)
  })
  it('refuses a peer id longer than any real one before decoding it (base58 is quadratic: 130 KB took a minute)', () => {
    const started = performance.now()
    expect(() => publicKeyOfPeerId('1'.repeat(130_000))).toThrow(InvalidPeerIdError)
    expect(performance.now() - started).toBeLessThan(100)
    expect(() => publicKeyOfPeerId('1'.repeat(MAX_PEER_ID_LENGTH + 1))).toThrow(InvalidPeerIdError)
  })
  it('peer ids embed the public key', () => {
    const pub = native.getPublicKey(native.randomSecretKey())
    expect(publicKeyOfPeerId(peerIdOfPublicKey(pub))).toEqual(pub)
    expect(() => publicKeyOfPeerId('nonsense')).toThrow(/not a peer id/)
  })
})
