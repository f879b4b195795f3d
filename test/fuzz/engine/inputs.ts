// The inputs of one target as a fast-check arbitrary: its valid seeds as they are, byte
// mutations of them, structured (value tree) mutations, pure random bytes, mutations of the
// interesting inputs found so far (the pool), and the target's own generated inputs.
import fc from 'fast-check'
import { applyByteOps, byteOp } from './byte-mutations.ts'
import { mutateCbor, mutateJson, treeOp } from './tree-mutations.ts'
import type { Layer } from './target.ts'

export interface FuzzInput {
  bytes: Uint8Array
  /** Built to be valid: it must be accepted. */
  wellFormed: boolean
  /** How it was made, for the failure report. */
  how: string
}

function wrapped (layer: Layer, bytes: Uint8Array): Uint8Array {
  if (layer.wrap === undefined) return bytes
  try {
    return layer.wrap(bytes)
  } catch {
    return bytes
  }
}

function pick<T> (list: readonly T[], n: number): T {
  return list[n % list.length]
}

export function inputsOf (layers: Layer[], pool: Uint8Array[], extra?: fc.Arbitrary<{ bytes: Uint8Array, wellFormed: boolean }>): fc.Arbitrary<FuzzInput> {
  const withSeeds = layers.filter(l => l.seeds.length > 0)
  const donors = withSeeds.flatMap(l => l.seeds)
  const seedCase = fc.record({ l: fc.nat(), s: fc.nat() }).map(({ l, s }): FuzzInput => {
    const layer = pick(withSeeds, l)
    return { bytes: wrapped(layer, pick(layer.seeds, s)), wellFormed: true, how: `seed of layer ${layer.name}` }
  })
  const byteCase = fc.record({ l: fc.nat(), s: fc.nat(), d: fc.nat(), ops: fc.array(byteOp, { minLength: 1, maxLength: 4 }) }).map(({ l, s, d, ops }): FuzzInput => {
    const layer = pick(withSeeds, l)
    return { bytes: wrapped(layer, applyByteOps(pick(layer.seeds, s), ops, pick(donors, d))), wellFormed: false, how: `byte mutation of layer ${layer.name}` }
  })
  const structured = withSeeds.filter(l => l.structure === 'cbor' || l.structure === 'json')
  const treeCase = fc.record({ l: fc.nat(), s: fc.nat(), ops: fc.array(treeOp(true), { minLength: 1, maxLength: 3 }) }).map(({ l, s, ops }): FuzzInput => {
    const layer = pick(structured, l)
    const seed = pick(layer.seeds, s)
    const mutated = (layer.structure === 'cbor' ? mutateCbor(seed, ops) : mutateJson(seed, ops)) ?? seed
    return { bytes: wrapped(layer, mutated), wellFormed: false, how: `value mutation of layer ${layer.name}` }
  })
  const randomCase = fc.uint8Array({ maxLength: 300 }).map((bytes): FuzzInput => ({ bytes, wellFormed: false, how: 'random bytes' }))
  const poolCase = fc.record({ i: fc.nat(), d: fc.nat(), ops: fc.array(byteOp, { minLength: 1, maxLength: 3 }) }).map(({ i, d, ops }): FuzzInput => {
    if (pool.length === 0) return { bytes: new Uint8Array(0), wellFormed: false, how: 'empty pool' }
    return { bytes: applyByteOps(pick(pool, i), ops, pick(donors, d)), wellFormed: false, how: 'mutation of a kept input' }
  })
  const cases: Array<{ arbitrary: fc.Arbitrary<FuzzInput>, weight: number }> = [
    { arbitrary: seedCase, weight: 1 },
    { arbitrary: byteCase, weight: 6 },
    { arbitrary: randomCase, weight: 1 },
    { arbitrary: poolCase, weight: 3 }
  ]
  if (structured.length > 0) cases.push({ arbitrary: treeCase, weight: 6 })
  if (extra !== undefined) cases.push({ arbitrary: extra.map(e => ({ ...e, how: e.wellFormed ? 'generated valid input' : 'generated input' })), weight: 6 })
  return fc.oneof(...cases)
}
