// A spore entry and its one canonical binary form. On the wire and on disk an entry is the
// canonical CBOR array [body, sig] where body is the canonical CBOR of every field but sig,
// so a receiver verifies the signature over the bytes it received, with no re-encoding.
import { encodeCanonical, splitSignedPair, sign, verifyRemembered, publicKeyOfPeerId, peerIdOfPublicKey, getPublicKey, toBase64Url } from '../../crypto/index.ts'
import { ENTRY_CODECS, isEntryType, peerId as peerIdParser, type EntryType, type EntryValue } from './types.ts'
import { SchemaError, str, uint } from './schema.ts'
import { decodeBody } from './body-decoder.ts'

/** Largest encoded entry accepted from anyone. */
export const MAX_ENTRY_BYTES = 72 * 1024

export interface EntryFields<T extends EntryType = EntryType> {
  type: T
  key: string
  value: EntryValue<T>
  origin: string
  seq: number
  issuedAt: number
  expiresAt?: number
}

export interface SignedEntry<T extends EntryType = EntryType> extends EntryFields<T> {
  sig: Uint8Array
  /** The canonical [body, sig] encoding, kept so storing and forwarding never re-encode. */
  bytes: Uint8Array
  /** The signed body bytes. */
  body: Uint8Array
}

export class EntryDecodeError extends Error {
  readonly name = 'EntryDecodeError'
}

const keyParser = str(256, /^[\x21-\x7e]+$/)
const FIELDS = new Set(['type', 'key', 'value', 'origin', 'seq', 'issuedAt', 'expiresAt'])

/** Checks fields against the schema of their type; returns them typed, or throws SchemaError. */
export function parseFields (raw: unknown): EntryFields {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array) throw new SchemaError('entry: expected a map')
  const rec = raw as Record<string, unknown>
  for (const k of Object.keys(rec)) if (!FIELDS.has(k)) throw new SchemaError(`entry: unexpected field ${k.slice(0, 40)}`)
  if (!isEntryType(rec.type)) throw new SchemaError('entry.type: unknown entry type')
  const fields: EntryFields = {
    type: rec.type,
    key: keyParser(rec.key, 'entry.key'),
    value: ENTRY_CODECS[rec.type].parse(rec.value, `entry.value(${rec.type})`) as EntryValue<EntryType>,
    origin: peerIdParser(rec.origin, 'entry.origin'),
    seq: uint()(rec.seq, 'entry.seq'),
    issuedAt: uint()(rec.issuedAt, 'entry.issuedAt')
  }
  if (rec.expiresAt !== undefined) fields.expiresAt = uint()(rec.expiresAt, 'entry.expiresAt')
  return fields
}

export interface Signer {
  secretKey: Uint8Array
  peerId: string
}

export function signerOf (secretKey: Uint8Array): Signer {
  return { secretKey, peerId: peerIdOfPublicKey(getPublicKey(secretKey)) }
}

/** Builds and signs an entry; `origin` is the signer's peer id. Throws SchemaError if invalid. */
export function signEntry<T extends EntryType> (signer: Signer, fields: Omit<EntryFields<T>, 'origin'>): SignedEntry<T> {
  const plain: Record<string, unknown> = { type: fields.type, key: fields.key, value: fields.value, origin: signer.peerId, seq: fields.seq, issuedAt: fields.issuedAt }
  if (fields.expiresAt !== undefined) plain.expiresAt = fields.expiresAt
  const checked = parseFields(plain)
  const body = encodeCanonical(plain)
  const sig = sign(signer.secretKey, body)
  return { ...(checked as EntryFields<T>), sig, body, bytes: encodeCanonical([body, sig]) }
}

/**
 * Decodes untrusted bytes into an entry whose schema holds. The signature is NOT checked here
 * (see verifyEntrySignature) so cheap checks can run first.
 */
export function decodeEntry (bytes: Uint8Array): SignedEntry {
  if (bytes.length > MAX_ENTRY_BYTES) throw new EntryDecodeError(`entry of ${bytes.length} bytes exceeds ${MAX_ENTRY_BYTES}`)
  const [body, sig] = splitEnvelope(bytes)
  let inner: unknown
  try {
    inner = decodeBody(body)
  } catch (err) {
    throw new EntryDecodeError((err as Error).message)
  }
  const fields = parseFields(inner)
  return { ...fields, body, sig, bytes }
}

/** The entry's [body, sig] envelope, split by its canonical heads (crypto's splitSignedPair). */
function splitEnvelope (bytes: Uint8Array): [Uint8Array, Uint8Array] {
  const pair = splitSignedPair(bytes)
  if (pair === 'not-canonical') throw new EntryDecodeError('entry body length is not canonical')
  if (pair === 'not-a-pair') throw new EntryDecodeError('entry is not [body, sig(64)]')
  return [pair.body, pair.sig]
}

const keyCache = new Map<string, Uint8Array>()
const KEY_CACHE_MAX = 8192

/** The Ed25519 key inside a peer id; parsed ids are cached because a few hundred origins sign everything. */
export function originKey (origin: string): Uint8Array {
  let key = keyCache.get(origin)
  if (key === undefined) {
    key = publicKeyOfPeerId(origin)
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value as string)
    keyCache.set(origin, key)
  }
  return key
}

export function verifyEntrySignature (entry: SignedEntry): boolean {
  let key: Uint8Array
  try {
    key = originKey(entry.origin)
  } catch {
    return false
  }
  return verifyRemembered(key, entry.body, entry.sig)
}

/** Where an entry lives: one record per (type, key) in each tier. Types never contain '/'. */
export function entryId (type: string, key: string): string {
  return `${type}/${key}`
}

/**
 * A 16-byte fingerprint of one exact signed entry, used by anti-entropy sync: the signature
 * folded by XOR. A signature verifies against one body only, and its two halves (R, S) cannot
 * be steered together without breaking Ed25519, so this is as good as a hash of the bytes and
 * costs nothing.
 */
export function entryHash (sig: Uint8Array): Uint8Array {
  const out = new Uint8Array(16)
  for (let i = 0; i < 16; i++) out[i] = sig[i] ^ sig[i + 16] ^ sig[i + 32] ^ sig[i + 48]
  return out
}

/**
 * Total order of two versions of the same record: higher seq, then later issuedAt, then the
 * larger signature bytes. A deterministic winner makes merging order-independent.
 */
export function compareVersions (a: { seq: number, issuedAt: number, sig: Uint8Array }, b: { seq: number, issuedAt: number, sig: Uint8Array }): number {
  if (a.seq !== b.seq) return a.seq - b.seq
  if (a.issuedAt !== b.issuedAt) return a.issuedAt - b.issuedAt
  for (let i = 0; i < 64; i++) if (a.sig[i] !== b.sig[i]) return a.sig[i] - b.sig[i]
  return 0
}

/** The JSON-friendly view used by `mycelium spores ls --json`. */
export interface EntryView {
  type: EntryType
  key: string
  origin: string
  seq: number
  issuedAt: number
  expiresAt?: number
  value: unknown
}

export function viewOf (entry: SignedEntry): EntryView {
  const view: EntryView = { type: entry.type, key: entry.key, origin: entry.origin, seq: entry.seq, issuedAt: entry.issuedAt, value: jsonSafe(entry.value) }
  if (entry.expiresAt !== undefined) view.expiresAt = entry.expiresAt
  return view
}

function jsonSafe (value: unknown): unknown {
  if (value instanceof Uint8Array) return toBase64Url(value)
  if (Array.isArray(value)) return value.map(jsonSafe)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]))
  return value
}
