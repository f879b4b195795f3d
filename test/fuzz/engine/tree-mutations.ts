// Structured mutations: a valid message is decoded into its value tree (CBOR or JSON), one to
// three nodes are changed, and the tree is encoded again with the real encoder. So the
// mutated input is well-formed CBOR/JSON and reaches the schema checks behind the parser:
// values of another type, missing and extra fields (including names that trip naive code:
// __proto__, toString, constructor), deep nesting, huge and negative numbers, long strings.
import fc from 'fast-check'
import { encode as cborEncode, decode as cborDecode } from 'cborg'

export interface TreeOp {
  kind: number
  pick: number
  key: string
  value: unknown
  n: number
}

// Most transports carry less (handshake 16 KiB, entries 72 KiB, certificates 64 KiB); bigger
// values are mostly repetition, whose decoding time grows with size, not with a bug.
const MAX_MUTATED_BYTES = 256 * 1024
const TRAP_KEYS = ['__proto__', 'toString', 'valueOf', 'constructor', 'hasOwnProperty', 'then', 'length', '']

/** A map whose own keys shadow Object.prototype: String(it) and `${it}` throw. */
function trapMap (): Record<string, unknown> {
  const o: Record<string, unknown> = {}
  Object.defineProperty(o, 'toString', { value: 1, enumerable: true, writable: true, configurable: true })
  Object.defineProperty(o, 'valueOf', { value: 1, enumerable: true, writable: true, configurable: true })
  return o
}

function nest (inner: unknown, depth: number, asMap: boolean): unknown {
  let v = inner
  for (let i = 0; i < depth; i++) v = asMap ? { a: v } : [v]
  return v
}

function scalars (binary: boolean): fc.Arbitrary<unknown> {
  const common: Array<fc.Arbitrary<unknown>> = [
    fc.constantFrom<unknown>(null, true, false, 0, -1, 1, 24, 255, 256, 65535, 65536, 2 ** 32, 2 ** 53 - 1, -(2 ** 53) + 1, 1.5, -0.5, 1e300, ''),
    fc.integer(),
    fc.string({ maxLength: 24 }),
    fc.constantFrom(' ', '\u0000', '\u{1F344}', '/ip4/127.0.0.1/tcp/1', '%zz', '../..', 'x'.repeat(300), 'y'.repeat(70_000)),
    fc.constant(null).map(() => trapMap()),
    fc.constant(null).map(() => ({})),
    fc.constant(null).map(() => []),
    fc.nat(40).map(d => nest(1, d, d % 2 === 0)),
    fc.constant(200).map(d => nest(0, d, false))
  ]
  if (binary) {
    common.push(
      fc.uint8Array({ maxLength: 80 }),
      fc.constantFrom(16, 32, 64, 65_536).map(n => new Uint8Array(n)),
      fc.constantFrom(2n ** 64n - 1n, -(2n ** 64n), 2n ** 53n)
    )
  }
  return fc.oneof(...common)
}

export function treeOp (binary: boolean): fc.Arbitrary<TreeOp> {
  return fc.record({
    kind: fc.nat(8),
    pick: fc.nat(),
    key: fc.oneof(fc.constantFrom(...TRAP_KEYS), fc.string({ maxLength: 12 })),
    value: scalars(binary),
    n: fc.nat(1000)
  })
}

interface Slot { parent: Record<string, unknown> | unknown[] | undefined, key: string | number }

function slots (root: unknown): Slot[] {
  const out: Slot[] = [{ parent: undefined, key: 0 }]
  const queue: unknown[] = [root]
  while (queue.length > 0 && out.length < 2000) {
    const v = queue.shift()
    if (v instanceof Uint8Array || v === null || typeof v !== 'object') continue
    for (const k of Array.isArray(v) ? v.keys() : Object.keys(v)) {
      out.push({ parent: v as Record<string, unknown>, key: k })
      queue.push((v as Record<string | number, unknown>)[k])
    }
  }
  return out
}

function setOwn (target: Record<string, unknown> | unknown[], key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

function nudge (v: unknown, n: number): unknown {
  if (typeof v === 'number') return [v + 1, v - 1, -v, v * 2 ** 32, v + 0.5, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2][n % 7]
  if (typeof v === 'string') return [v + v, v.slice(1), v.toUpperCase(), v + '\u0000', `${v}/${v}`, v.repeat(50), ''][n % 7]
  if (v instanceof Uint8Array) return [v.subarray(1), new Uint8Array([...v, 0]), new Uint8Array(v.length), v.subarray(0, v.length >> 1)][n % 4]
  if (typeof v === 'boolean') return !v
  return v
}

/** Applies the ops to a copy of the tree; returns the new root. */
export function mutateTree (root: unknown, ops: readonly TreeOp[]): unknown {
  let tree = root
  for (const op of ops) {
    const all = slots(tree)
    const slot = all[op.pick % all.length]
    const get = (): unknown => slot.parent === undefined ? tree : (slot.parent as Record<string | number, unknown>)[slot.key]
    const set = (v: unknown): void => { if (slot.parent === undefined) tree = v; else setOwn(slot.parent, slot.key, v) }
    switch (op.kind) {
      case 0: set(op.value); break
      case 1: // delete the field or item
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1)
        else if (slot.parent !== undefined) delete slot.parent[slot.key as string]
        break
      case 2: { // an extra field next to it
        const v = get()
        if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !Array.isArray(v)) setOwn(v as Record<string, unknown>, op.key, op.value)
        else if (Array.isArray(v)) v.push(op.value)
        else set(op.value)
        break
      }
      case 3: set([get()]); break
      case 4: set(nest(get(), 2 + (op.n % 80), op.n % 2 === 0)); break
      case 5: { // another node of the same message in its place (a field of the wrong kind)
        const other = all[op.n % all.length]
        set(other.parent === undefined ? tree : (other.parent as Record<string | number, unknown>)[other.key])
        break
      }
      case 6: set(nudge(get(), op.n)); break
      case 7: { // a list made long
        const v = get()
        set(Array.from({ length: [17, 65, 257][op.n % 3] }, () => Array.isArray(v) && v.length > 0 ? v[0] : v))
        break
      }
      default: set(undefined); break
    }
  }
  return tree
}

export function mutateCbor (bytes: Uint8Array, ops: readonly TreeOp[]): Uint8Array | undefined {
  let tree: unknown
  try {
    tree = cborDecode(bytes, { allowUndefined: true, allowBigInt: true })
  } catch {
    return undefined
  }
  try {
    const out = cborEncode(mutateTree(tree, ops))
    // a long list of long values: far beyond any transport's limit, and slow to make
    return out.length > MAX_MUTATED_BYTES ? undefined : out
  } catch {
    return undefined
  }
}

export function mutateJson (bytes: Uint8Array, ops: readonly TreeOp[]): Uint8Array | undefined {
  let tree: unknown
  try {
    tree = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    return undefined
  }
  try {
    const text = JSON.stringify(mutateTree(tree, ops), (_k, v: unknown) => typeof v === 'bigint' ? Number(v) : v instanceof Uint8Array ? Buffer.from(v).toString('base64url') : v)
    return text === undefined || text.length > MAX_MUTATED_BYTES ? undefined : Buffer.from(text)
  } catch {
    return undefined
  }
}
