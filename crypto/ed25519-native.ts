// Ed25519 on Node through node:crypto: about 13x faster than @noble/curves on this
// hardware, and the signatures are byte-for-byte the same (RFC 8032 is deterministic).
import { createPrivateKey, createPublicKey, randomBytes, sign as nodeSign, verify as nodeVerify, hash, type KeyObject } from 'node:crypto'

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

// Verifying keys repeat a lot (a few hundred peers sign everything); parsing a DER key
// costs more than the verification itself, so parsed keys are kept in a bounded cache.
const publicKeyCache = new Map<string, KeyObject>()
const PUBLIC_KEY_CACHE_MAX = 4096

function publicKeyObject (publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey).toString('base64')
  let key = publicKeyCache.get(id)
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
    if (publicKeyCache.size >= PUBLIC_KEY_CACHE_MAX) publicKeyCache.delete(publicKeyCache.keys().next().value as string)
    publicKeyCache.set(id, key)
  }
  return key
}

export function randomSecretKey (): Uint8Array {
  return new Uint8Array(randomBytes(32))
}

export function getPublicKey (secretKey: Uint8Array): Uint8Array {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' })
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' })
  return new Uint8Array(spki.subarray(SPKI_PREFIX.length))
}

// A node signs with one or two keys all its life: their key objects are made once.
const privateKeys = new Map<string, KeyObject>()
const PRIVATE_KEYS_MAX = 16

export function sign (secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  const id = Buffer.from(secretKey).toString('hex')
  let priv = privateKeys.get(id)
  if (priv === undefined) {
    priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' })
    if (privateKeys.size >= PRIVATE_KEYS_MAX) privateKeys.delete(privateKeys.keys().next().value as string)
    privateKeys.set(id, priv)
  }
  return new Uint8Array(nodeSign(null, message, priv))
}

export function verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false
  try {
    return nodeVerify(null, message, publicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}

/** One-shot: no Hash object per call (most hashes here are of a few hundred bytes, many per message). */
export function sha256 (data: Uint8Array): Uint8Array {
  const digest = hash('sha256', data, 'buffer')
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.length)
}

export function randomBytesOf (length: number): Uint8Array {
  return new Uint8Array(randomBytes(length))
}
