// One canonical binary encoding for everything that is signed or hashed. cborg encodes
// deterministically (sorted map keys, smallest integer forms); decoding is strict and then
// re-encoded, so a second encoding of the same value (a different byte string that a
// lenient decoder would accept) can never carry a valid signature.
import { encode as cborEncode, decode as cborDecode } from 'cborg'

export class NonCanonicalEncodingError extends Error {
  readonly name = 'NonCanonicalEncodingError'
}

export function encodeCanonical (value: unknown): Uint8Array {
  return cborEncode(value)
}

/** Decodes bytes that must be the canonical encoding of their value. */
export function decodeCanonical (bytes: Uint8Array): unknown {
  let value: unknown
  try {
    value = cborDecode(bytes, { strict: true, rejectDuplicateMapKeys: true, allowUndefined: false, allowInfinity: false, allowNaN: false, allowIndefinite: false, allowBigInt: true })
  } catch (err) {
    throw new NonCanonicalEncodingError(`undecodable CBOR: ${(err as Error).message}`)
  }
  const again = cborEncode(value)
  if (!equalBytes(again, bytes)) throw new NonCanonicalEncodingError('CBOR is not in canonical form')
  return value
}

export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
