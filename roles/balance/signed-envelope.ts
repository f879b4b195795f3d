// The outer shape both signed role messages share on the wire (advertisements and departures):
// `{ <body>: { …exactly these fields }, sig }`, canonical CBOR, under a size bound. Checked
// here once, before either decoder looks at a field; the signature itself is the caller's to
// verify, over the body it then knows.
import { decodeCanonical } from '../../crypto/index.ts'

/**
 * The body of a `{ [bodyKey]: body, sig }` envelope whose body has exactly `fields` (sorted).
 * `fail` throws the caller's own error type with the reason.
 */
export function openSignedEnvelope (bytes: Uint8Array, what: string, maxBytes: number, bodyKey: string, fields: readonly string[], fail: (why: string) => never): { body: Record<string, unknown>, sig: Uint8Array } {
  if (bytes.length > maxBytes) fail(`${what} of ${bytes.length} bytes exceeds ${maxBytes}`)
  let outer: unknown
  try {
    outer = decodeCanonical(bytes)
  } catch (err) {
    fail((err as Error).message)
  }
  const o = outer as Record<string, unknown>
  if (typeof o !== 'object' || o === null || Object.keys(o).length !== 2 || !(o.sig instanceof Uint8Array) || typeof o[bodyKey] !== 'object' || o[bodyKey] === null) fail(`${what} must be { ${bodyKey}, sig }`)
  const body = o[bodyKey] as Record<string, unknown>
  const keys = Object.keys(body).sort()
  if (keys.length !== fields.length || keys.some((k, i) => k !== fields[i])) fail(`${what} has missing or unknown fields`)
  return { body, sig: o.sig as Uint8Array }
}
