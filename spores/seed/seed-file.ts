// The seed file: a signed, self-checking snapshot for bootstrap and disaster recovery.
//   bytes 0..7   magic "MYCSEED1"
//   bytes 8..11  payload length, u32 big-endian (a shorter file is truncated)
//   payload      canonical CBOR [exporter peer id, body, sig]; sig = Ed25519 by the exporter over body
//   body         canonical CBOR { format: 1, network, exportedAt, exporter, membership (the
//                exporter's membership certificate chain, opaque here, checked by an injected
//                function), primary: { epoch, digest } | null, nodes: [{ peerId, addrs }],
//                entries: [signed entry bytes] }
// The signature is checked before the body is parsed, so any altered byte of the body is
// reported as tampering.
import { encodeCanonical, decodeCanonical, sign, verify, publicKeyOfPeerId } from '../../crypto/index.ts'
import { SchemaError, str, uint, list, bytes, struct } from '../entry/schema.ts'
import { peerId } from '../entry/types.ts'
import type { Signer } from '../entry/entry.ts'
import { SeedFormatError, SeedSignatureError, SeedTruncatedError } from '../errors.ts'

const MAGIC = new TextEncoder().encode('MYCSEED1')
export const MAX_SEED_BYTES = 64 * 1024 * 1024
export const MAX_SEED_NODES = 1024

export interface SeedNode {
  peerId: string
  addrs: string[]
}

export interface SeedBody {
  format: 1
  network: string
  exportedAt: number
  exporter: string
  membership: Uint8Array
  primary: { epoch: number, digest: Uint8Array } | null
  nodes: SeedNode[]
  entries: Uint8Array[]
}

const bodyShape = struct({
  // exactly 1: uint(1) let format 0 through, decoded as a file of a format that does not exist
  format: (raw: unknown, at: string) => { if (raw !== 1) throw new SchemaError(`${at}: unknown seed format`); return 1 as const },
  network: str(128),
  exportedAt: uint(),
  exporter: peerId,
  membership: bytes(256 * 1024),
  primary: (raw: unknown, at: string) => raw === null ? null : struct({ epoch: uint(), digest: bytes(32) })(raw, at),
  nodes: list(struct({ peerId, addrs: list(str(256, /^\//), 16) }), MAX_SEED_NODES),
  entries: list(bytes(72 * 1024), 200_000)
})

export function encodeSeedFile (signer: Signer, body: Omit<SeedBody, 'format' | 'exporter'>): Uint8Array {
  const full: SeedBody = { format: 1, exporter: signer.peerId, ...body }
  bodyShape(full, 'seed')
  const bodyBytes = encodeCanonical(full)
  const payload = encodeCanonical([signer.peerId, bodyBytes, sign(signer.secretKey, bodyBytes)])
  const out = new Uint8Array(12 + payload.length)
  out.set(MAGIC, 0)
  new DataView(out.buffer).setUint32(8, payload.length)
  out.set(payload, 12)
  return out
}

export function decodeSeedFile (file: Uint8Array): SeedBody {
  if (file.length < 12 || !MAGIC.every((b, i) => file[i] === b)) throw new SeedFormatError('not a mycelium seed file')
  const length = new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(8)
  if (file.length - 12 < length) throw new SeedTruncatedError(`seed file is truncated: ${file.length - 12} of ${length} bytes`)
  if (file.length - 12 > length) throw new SeedFormatError('seed file has trailing bytes')
  if (length > MAX_SEED_BYTES) throw new SeedFormatError('seed file is too large')
  let envelope: unknown
  try {
    envelope = decodeCanonical(file.subarray(12))
  } catch (err) {
    throw new SeedFormatError(`seed file does not decode: ${(err as Error).message}`)
  }
  if (!Array.isArray(envelope) || envelope.length !== 3 || typeof envelope[0] !== 'string' || !(envelope[1] instanceof Uint8Array) || !(envelope[2] instanceof Uint8Array)) throw new SeedFormatError('seed file is not [exporter, body, sig]')
  let key: Uint8Array
  try {
    key = publicKeyOfPeerId(envelope[0])
  } catch {
    throw new SeedSignatureError('seed exporter id is not a valid peer id (altered?)')
  }
  if (!verify(key, envelope[1], envelope[2])) throw new SeedSignatureError('seed file signature does not match its content: it was altered')
  let body: SeedBody
  try {
    body = bodyShape(decodeCanonical(envelope[1]), 'seed') as SeedBody
  } catch (err) {
    throw new SeedFormatError(`seed body is invalid: ${(err as Error).message}`)
  }
  if (body.exporter !== envelope[0]) throw new SeedSignatureError('seed body names another exporter than the signer')
  return body
}
