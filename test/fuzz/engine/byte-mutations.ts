// Byte-level mutations of a valid message (always on a copy: cborg hands out Buffers, whose
// slice() is a view), as fast-check values so a failing input shrinks and
// a seed reproduces it: flip bits, overwrite with boundary bytes, truncate, extend, insert,
// delete, duplicate, splice from another seed, and lengths made huge (0xff runs).
import fc from 'fast-check'

export interface ByteOp {
  kind: number
  at: number
  len: number
  value: number
  data: Uint8Array
}

// bytes that sit on CBOR head boundaries and integer edges
const INTERESTING = [0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0x3f, 0x40, 0x5b, 0x5f, 0x7f, 0x80, 0x9b, 0x9f, 0xbb, 0xbf, 0xc0, 0xd8, 0xf4, 0xf6, 0xf7, 0xf9, 0xfa, 0xfb, 0xff]
const KINDS = 10

export const byteOp: fc.Arbitrary<ByteOp> = fc.record({
  kind: fc.nat(KINDS - 1),
  at: fc.nat(),
  len: fc.nat({ max: 64 }),
  value: fc.nat(255),
  data: fc.uint8Array({ maxLength: 24 })
})

function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

function applyOne (input: Uint8Array, op: ByteOp, donor: Uint8Array): Uint8Array {
  const n = input.length
  const at = n === 0 ? 0 : op.at % (n + 1)
  const len = Math.min(op.len, n - Math.min(at, n))
  switch (op.kind) {
    case 0: { // flip one bit
      if (n === 0) return op.data
      const out = Uint8Array.from(input)
      out[at % n] ^= 1 << (op.value & 7)
      return out
    }
    case 1: { // a boundary byte
      if (n === 0) return Uint8Array.of(INTERESTING[op.value % INTERESTING.length])
      const out = Uint8Array.from(input)
      out[at % n] = INTERESTING[op.value % INTERESTING.length]
      return out
    }
    case 2: return input.subarray(0, at) // truncate
    case 3: return concat(input, op.data) // extend
    case 4: return concat(input.subarray(0, at), op.data, input.subarray(at)) // insert
    case 5: return concat(input.subarray(0, at), input.subarray(at + Math.max(1, len))) // delete
    case 6: return concat(input.subarray(0, at + len), input.subarray(at, at + len), input.subarray(at + len)) // duplicate
    case 7: { // splice a piece of another seed
      const from = donor.length === 0 ? 0 : op.value % donor.length
      return concat(input.subarray(0, at), donor.subarray(from, from + Math.max(1, op.len)), input.subarray(at + len))
    }
    case 8: { // a run of 0xff: lengths and counts at their maximum
      const out = Uint8Array.from(input)
      for (let i = at; i < Math.min(n, at + 1 + (op.value & 7)); i++) out[i] = 0xff
      return out
    }
    default: { // random bytes over a range
      const out = Uint8Array.from(input)
      out.set(op.data.subarray(0, Math.max(0, n - at)), Math.min(at, n))
      return out
    }
  }
}

export function applyByteOps (input: Uint8Array, ops: readonly ByteOp[], donor: Uint8Array): Uint8Array {
  let out = input
  for (const op of ops) out = applyOne(out, op, donor)
  return out
}
