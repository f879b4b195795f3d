// Small schema combinators. Each returns a parser that checks an untrusted decoded value and
// returns it typed, or throws SchemaError; the same parser runs before signing, so an entry
// that would not pass on the receiving side can never be produced.

export class SchemaError extends Error {
  readonly name = 'SchemaError'
}

export type Parser<T> = (raw: unknown, at: string) => T

function fail (at: string, what: string): never {
  throw new SchemaError(`${at}: ${what}`)
}

export function str (maxLength: number, pattern?: RegExp): Parser<string> {
  return (raw, at) => {
    if (typeof raw !== 'string') fail(at, 'expected a string')
    if (raw.length > maxLength) fail(at, `longer than ${maxLength}`)
    if (pattern !== undefined && !pattern.test(raw)) fail(at, 'has a disallowed form')
    return raw
  }
}

export function oneOf<T extends string> (...values: T[]): Parser<T> {
  return (raw, at) => {
    if (typeof raw !== 'string' || !(values as string[]).includes(raw)) fail(at, `expected one of ${values.join(', ')}`)
    return raw as T
  }
}

export function uint (max = Number.MAX_SAFE_INTEGER): Parser<number> {
  return (raw, at) => {
    if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 0 || raw > max) fail(at, `expected an integer in 0..${max}`)
    return raw
  }
}

export function num (min: number, max: number): Parser<number> {
  return (raw, at) => {
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < min || raw > max || Object.is(raw, -0)) fail(at, `expected a number in ${min}..${max}`)
    return raw
  }
}

export function bool (): Parser<boolean> {
  return (raw, at) => {
    if (typeof raw !== 'boolean') fail(at, 'expected a boolean')
    return raw
  }
}

export function bytes (maxLength: number): Parser<Uint8Array> {
  return (raw, at) => {
    if (!(raw instanceof Uint8Array)) fail(at, 'expected bytes')
    if (raw.length > maxLength) fail(at, `more than ${maxLength} bytes`)
    return raw
  }
}

export function list<T> (item: Parser<T>, maxLength: number): Parser<T[]> {
  return (raw, at) => {
    if (!Array.isArray(raw)) fail(at, 'expected a list')
    if (raw.length > maxLength) fail(at, `more than ${maxLength} items`)
    return raw.map((v, i) => item(v, `${at}[${i}]`))
  }
}

/** A map of short names to scalars (hardware summaries, free-form labels). */
export function scalarMap (maxKeys: number, maxString = 64): Parser<Record<string, string | number | boolean>> {
  return (raw, at) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array) fail(at, 'expected a map')
    const keys = Object.keys(raw)
    if (keys.length > maxKeys) fail(at, `more than ${maxKeys} keys`)
    const out: Record<string, string | number | boolean> = {}
    for (const k of keys) {
      if (k.length > 32) fail(at, `key ${k.slice(0, 40)} is too long`)
      const v = (raw as Record<string, unknown>)[k]
      if (typeof v === 'string') { if (v.length > maxString) fail(`${at}.${k}`, 'string too long') } else if (typeof v === 'number') { if (!Number.isFinite(v) || Object.is(v, -0)) fail(`${at}.${k}`, 'not a finite number') } else if (typeof v !== 'boolean') fail(`${at}.${k}`, 'expected a scalar')
      out[k] = v
    }
    return out
  }
}

type Shape = Record<string, Parser<unknown>>
type Out<S extends Shape, O extends keyof S> = { [K in Exclude<keyof S, O>]: ReturnType<S[K]> } & { [K in O]?: ReturnType<S[K]> }

/** A map with exactly these fields: required ones, optional ones, and nothing else. */
export function struct<S extends Shape, O extends keyof S = never> (shape: S, optional: O[] = []): Parser<Out<S, O>> {
  const names = Object.keys(shape)
  const opt = new Set<string>(optional as string[])
  return (raw, at) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array) fail(at, 'expected a map')
    const rec = raw as Record<string, unknown>
    // own fields only: `k in shape` let '__proto__' or 'toString' pass as known, and be dropped
    for (const k of Object.keys(rec)) if (!Object.hasOwn(shape, k)) fail(at, `unexpected field ${k.slice(0, 40)}`)
    const out: Record<string, unknown> = {}
    for (const k of names) {
      if (rec[k] === undefined) {
        if (!opt.has(k)) fail(at, `missing field ${k}`)
        continue
      }
      out[k] = shape[k](rec[k], `${at}.${k}`)
    }
    return out as Out<S, O>
  }
}
