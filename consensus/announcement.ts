// The announcement of a certified result on the certified topic: canonical CBOR
// { certificate, input }, published once a round (round-engine.ts: announces) for nodes that
// missed some votes or saw no round at all (the input is what lets them act on it).
// A node that already holds a certificate with the same key and result learns nothing from it,
// and neither takes nor relays it: relayed among a committee, where every member formed the
// certificate itself, each announcement of an epoch-sized input crossed every link of the mesh
// and cost the members more than the round did.
import { encodeCanonical, decodeCanonical } from '../crypto/index.ts'
import { ConsensusMessageError } from './errors.ts'
import { MAX_MESSAGE_BYTES } from './messages.ts'
import type { Certificate } from './certificate.ts'

export const MAX_ANNOUNCEMENT_BYTES = MAX_MESSAGE_BYTES + 80 * 1024

export interface Announcement {
  /** The certificate's bytes, not verified yet. */
  certificate: Uint8Array
  input: Uint8Array
}

/** What an announcement's certificate says it decides, read without checking it. */
export interface AnnouncementClaim {
  key: string
  result: Uint8Array
}

export function encodeAnnouncement (certificate: Certificate, input: Uint8Array | undefined): Uint8Array {
  return encodeCanonical({ certificate: certificate.bytes, input: input ?? new Uint8Array() })
}

/** Decodes an announcement (canonical CBOR, exact fields); throws ConsensusMessageError or NonCanonicalEncodingError. */
export function decodeAnnouncement (data: Uint8Array): Announcement {
  if (data.length > MAX_ANNOUNCEMENT_BYTES) throw new ConsensusMessageError('announcement too large')
  const raw = decodeCanonical(data) as { certificate?: unknown, input?: unknown }
  if (!(raw?.certificate instanceof Uint8Array) || !(raw.input instanceof Uint8Array) || Object.keys(raw).length !== 2) throw new ConsensusMessageError('expected { certificate, input }')
  return { certificate: raw.certificate, input: raw.input }
}

// Canonical key order is shorter first: the input comes before the certificate.
const INPUT_KEY = new TextEncoder().encode('\x65input')
const CERTIFICATE_KEY = new TextEncoder().encode('\x6bcertificate')

/**
 * The key and result an announcement claims, or undefined where it is not shaped as
 * encodeAnnouncement writes it. Only the small certificate is decoded, not the input: this is
 * only to recognise an announcement of what this node holds already (which it then drops),
 * so a claim read from a malformed or forged announcement can cost nothing but that drop.
 */
export function claimOf (data: Uint8Array): AnnouncementClaim | undefined {
  if (data.length > MAX_ANNOUNCEMENT_BYTES || data[0] !== 0xa2 || !startsWith(data, 1, INPUT_KEY)) return undefined
  const input = byteStringAt(data, 1 + INPUT_KEY.length)
  if (input === undefined || !startsWith(data, input.end, CERTIFICATE_KEY)) return undefined
  const certificate = byteStringAt(data, input.end + CERTIFICATE_KEY.length)
  if (certificate === undefined || certificate.end !== data.length) return undefined
  try {
    const peek = decodeCanonical(data.subarray(certificate.start, certificate.end)) as { header?: { key?: unknown }, result?: unknown } | null
    const key = peek?.header?.key
    const result = peek?.result
    return typeof key === 'string' && result instanceof Uint8Array ? { key, result } : undefined
  } catch {
    return undefined
  }
}

function startsWith (data: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (at + prefix.length > data.length) return false
  for (let i = 0; i < prefix.length; i++) if (data[at + i] !== prefix[i]) return false
  return true
}

/** Where the CBOR byte string whose head is at `at` lies. */
function byteStringAt (data: Uint8Array, at: number): { start: number, end: number } | undefined {
  const head = data[at]
  if (head === undefined || head >> 5 !== 2) return undefined
  const info = head & 0x1f
  let length: number
  let start: number
  if (info < 24) {
    length = info
    start = at + 1
  } else if (info === 24) {
    length = data[at + 1]
    start = at + 2
  } else if (info === 25) {
    length = (data[at + 1] << 8) | data[at + 2]
    start = at + 3
  } else if (info === 26) {
    length = ((data[at + 1] << 24) >>> 0) + (data[at + 2] << 16) + (data[at + 3] << 8) + data[at + 4]
    start = at + 5
  } else {
    return undefined
  }
  const end = start + length
  return Number.isNaN(end) || end > data.length ? undefined : { start, end }
}
