// One canonical binary encoding for everything that is signed or hashed. cborg encodes
// deterministically (sorted map keys, smallest integer forms); decoding is strict and then
// re-encoded, so a second encoding of the same value (a different byte string that a
// lenient decoder would accept) can never carry a valid signature.
import { encode as cborEncode, decode as cborDecode } from 'cborg'

export class NonCanonicalEncodingError extends Error {
  readonly name = 'NonCanonicalEncodingError'
}

/**
 * Deepest nesting of arrays and maps accepted. No format of the project nests beyond a dozen
 * levels; cborg recurses on both decode and encode, and a few kilobytes of nested maps that
 * decode can still overflow the stack when re-encoded (a bare RangeError).
 */
export const MAX_CBOR_DEPTH = 64

export function encodeCanonical (value: unknown): Uint8Array {
  return cborEncode(value)
}

/** Decodes bytes that must be the canonical encoding of their value. */
export function decodeCanonical (bytes: Uint8Array): unknown {
  if (nestingExceeds(bytes, MAX_CBOR_DEPTH)) throw new NonCanonicalEncodingError(`CBOR nested deeper than ${MAX_CBOR_DEPTH} levels`)
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

/**
 * True when the items in `bytes` open more than `max` arrays, maps or tags at once. A walk over
 * the heads only (no values are built), so it runs before the recursive decoder. Malformed
 * input is left to the decoder: the walk stops where it cannot read on.
 */
function nestingExceeds (bytes: Uint8Array, max: number): boolean {
  // items still owed by each open container; Infinity for indefinite lengths
  const open: number[] = []
  let pos = 0
  while (pos < bytes.length) {
    const head = bytes[pos++]
    const major = head >> 5
    const info = head & 0x1f
    let arg = info
    if (info >= 24 && info <= 27) {
      const width = 1 << (info - 24)
      if (pos + width > bytes.length) return false
      arg = 0
      for (let i = 0; i < width; i++) arg = arg * 256 + bytes[pos + i]
      pos += width
    } else if (info > 27 && info !== 31) return false
    // this item fills one slot of its container (a break ends an indefinite one)
    if (head === 0xff) {
      open.pop()
    } else if (open.length > 0 && open[open.length - 1] !== Infinity) {
      open[open.length - 1]--
    }
    if (major === 2 || major === 3) {
      if (info !== 31) pos += arg
    } else if (major === 4 || major === 5 || major === 6) {
      const items = info === 31 ? Infinity : major === 5 ? arg * 2 : major === 6 ? 1 : arg
      if (items > 0) {
        open.push(items)
        if (open.length > max) return true
      }
    }
    while (open.length > 0 && open[open.length - 1] === 0) open.pop()
  }
  return false
}

export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Why bytes are not a canonical [body, sig(64)] pair: not that shape, or a length not in its shortest form. */
export type SignedPairFault = 'not-a-pair' | 'not-canonical'

/**
 * Splits the canonical CBOR array [body: bytes, sig: bytes(64)] without a general decoder: it is
 * on the path of every received spore entry and BFT message, and decoding then re-encoding a
 * proposal's whole input only to find the two byte strings cost a round more than its checks.
 * Only the shortest length forms are accepted, so the split is exactly the canonical form.
 */
export function splitSignedPair (bytes: Uint8Array): { body: Uint8Array, sig: Uint8Array } | SignedPairFault {
  const n = bytes.length
  if (n < 2 + 66 || bytes[0] !== 0x82) return 'not-a-pair'
  const head = bytes[1]
  let length: number
  let start: number
  if (head >= 0x40 && head <= 0x57) {
    length = head - 0x40
    start = 2
  } else if (head === 0x58) {
    length = bytes[2]
    start = 3
    if (length < 24) return 'not-canonical'
  } else if (head === 0x59) {
    length = (bytes[2] << 8) | bytes[3]
    start = 4
    if (length < 256) return 'not-canonical'
  } else if (head === 0x5a) {
    length = ((bytes[2] << 24) >>> 0) + (bytes[3] << 16) + (bytes[4] << 8) + bytes[5]
    start = 6
    if (length < 65536) return 'not-canonical'
  } else {
    return 'not-a-pair'
  }
  const sigAt = start + length
  if (sigAt + 66 !== n || bytes[sigAt] !== 0x58 || bytes[sigAt + 1] !== 64) return 'not-a-pair'
  return { body: bytes.subarray(start, sigAt), sig: bytes.subarray(sigAt + 2) }
}
