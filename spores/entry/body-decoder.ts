// One-pass decoder for entry bodies: it accepts exactly the canonical CBOR that
// encodeCanonical produces for entry values (maps with text keys in length-then-bytewise
// order, arrays, text, bytes, safe integers in their shortest form, floats in their shortest
// exact form, booleans, null) and throws on anything else. decodeCanonical does the same by
// decoding and re-encoding; this is on the path of every received entry and costs a quarter
// of that. Values outside the subset (tags, undefined, big integers, -0, NaN, infinities,
// indefinite lengths) are refused even where decodeCanonical would accept them.
import { encodeCanonical } from '../../crypto/index.ts'

export class BodyDecodeError extends Error {
  readonly name = 'BodyDecodeError'
}

const MAX_DEPTH = 16
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
function fail (what: string): never {
  throw new BodyDecodeError(`entry body is not canonical CBOR: ${what}`)
}

function halfToNumber (h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

class Reader {
  pos = 0
  readonly b: Uint8Array

  constructor (b: Uint8Array) {
    this.b = b
  }

  /** The argument of a head with the shortest-form rule; returns a safe integer. */
  arg (info: number): number {
    const b = this.b
    if (info < 24) return info
    let v: number
    if (info === 24) {
      if (this.pos + 1 > b.length) fail('truncated')
      v = b[this.pos]
      this.pos += 1
      if (v < 24) fail('long form of a small argument')
    } else if (info === 25) {
      if (this.pos + 2 > b.length) fail('truncated')
      v = (b[this.pos] << 8) | b[this.pos + 1]
      this.pos += 2
      if (v < 256) fail('long form of a small argument')
    } else if (info === 26) {
      if (this.pos + 4 > b.length) fail('truncated')
      v = ((b[this.pos] << 24) >>> 0) + (b[this.pos + 1] << 16) + (b[this.pos + 2] << 8) + b[this.pos + 3]
      this.pos += 4
      if (v < 65536) fail('long form of a small argument')
    } else if (info === 27) {
      if (this.pos + 8 > b.length) fail('truncated')
      const hi = ((b[this.pos] << 24) >>> 0) + (b[this.pos + 1] << 16) + (b[this.pos + 2] << 8) + b[this.pos + 3]
      const lo = ((b[this.pos + 4] << 24) >>> 0) + (b[this.pos + 5] << 16) + (b[this.pos + 6] << 8) + b[this.pos + 7]
      this.pos += 8
      if (hi === 0) fail('long form of a small argument')
      if (hi > 0x1fffff) fail('integer beyond 2^53')
      v = hi * 2 ** 32 + lo
    } else {
      fail('indefinite or reserved length')
    }
    return v
  }

  take (n: number): Uint8Array {
    if (this.pos + n > this.b.length) fail('truncated')
    const out = this.b.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  value (depth: number): unknown {
    if (this.pos >= this.b.length) fail('truncated')
    const head = this.b[this.pos++]
    const major = head >> 5
    const info = head & 0x1f
    switch (major) {
      case 0: return this.arg(info)
      case 1: {
        const n = this.arg(info)
        if (n >= Number.MAX_SAFE_INTEGER) fail('integer beyond 2^53')
        return -1 - n
      }
      case 2: return new Uint8Array(this.take(this.arg(info)))
      case 3: {
        try {
          return utf8.decode(this.take(this.arg(info)))
        } catch (err) {
          if (err instanceof BodyDecodeError) throw err
          return fail('invalid UTF-8')
        }
      }
      case 4: {
        if (depth >= MAX_DEPTH) fail('nested too deep')
        const n = this.arg(info)
        if (n > this.b.length - this.pos) fail('truncated')
        const out: unknown[] = []
        for (let i = 0; i < n; i++) out.push(this.value(depth + 1))
        return out
      }
      case 5: {
        if (depth >= MAX_DEPTH) fail('nested too deep')
        const n = this.arg(info)
        if (n > this.b.length - this.pos) fail('truncated')
        const out: Record<string, unknown> = {}
        let prev: Uint8Array | undefined
        for (let i = 0; i < n; i++) {
          if (this.pos >= this.b.length) fail('truncated')
          const kh = this.b[this.pos++]
          if (kh >> 5 !== 3) fail('map key is not text')
          const raw = this.take(this.arg(kh & 0x1f))
          if (prev !== undefined && !keyAfter(prev, raw)) fail('map keys out of order or repeated')
          prev = raw
          let key: string
          try {
            key = utf8.decode(raw)
          } catch {
            return fail('invalid UTF-8')
          }
          if (key === '__proto__') fail('reserved key')
          out[key] = this.value(depth + 1)
        }
        return out
      }
      case 7: {
        if (info === 20) return false
        if (info === 21) return true
        if (info === 22) return null
        let v: number
        let width: number
        if (info === 25) {
          width = 2
          const bits = this.take(2)
          v = halfToNumber((bits[0] << 8) | bits[1])
        } else if (info === 26) {
          width = 4
          const bits = this.take(4)
          v = new DataView(bits.buffer, bits.byteOffset, 4).getFloat32(0)
        } else if (info === 27) {
          width = 8
          const bits = this.take(8)
          v = new DataView(bits.buffer, bits.byteOffset, 8).getFloat64(0)
        } else {
          return fail('unsupported simple value')
        }
        if (!Number.isFinite(v) || Number.isInteger(v)) fail('float that is not a finite non-integer')
        // "Shortest form" is whatever the canonical encoder writes (it keeps some subnormal
        // halves as float32): compare with its bytes rather than re-deriving its rule.
        if (!sameBytes(encodeCanonical(v), this.b.subarray(this.pos - width - 1, this.pos))) fail('float not in its shortest form')
        return v
      }
      default:
        return fail('tags are not allowed')
    }
  }
}

/** Canonical key order: shorter first, then bytewise. */
function keyAfter (prev: Uint8Array, next: Uint8Array): boolean {
  if (prev.length !== next.length) return next.length > prev.length
  for (let i = 0; i < prev.length; i++) if (prev[i] !== next[i]) return next[i] > prev[i]
  return false
}

export function decodeBody (bytes: Uint8Array): unknown {
  const r = new Reader(bytes)
  const value = r.value(0)
  if (r.pos !== bytes.length) fail('trailing bytes')
  return value
}
