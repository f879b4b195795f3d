// A primary epoch: a certified snapshot of the agreed spore. On the wire and on disk it is the
// canonical CBOR [header, certificate, entries]. The header is small and self-contained:
//   { network, epoch, prev (digest of epoch-1, or null for epoch 0), entriesDigest,
//     committee (sorted peer ids that certify the next epoch), issuedAt }
// digest = sha256(header bytes); entriesDigest = sha256(canonical list of the entries' bytes,
// sorted by (type, key)). A chain of (header, certificate) pairs can thus be checked without
// the entries, and the entries against the last header.
import { encodeCanonical, decodeCanonical, sha256, equalBytes } from '../../crypto/index.ts'
import { decodeEntry, entryId, type SignedEntry } from '../entry/entry.ts'
import { SchemaError, str, uint, list, bytes, struct } from '../entry/schema.ts'
import { peerId } from '../entry/types.ts'
import { EpochRejectedError } from '../errors.ts'

export const MAX_EPOCH_BYTES = 32 * 1024 * 1024
export const MAX_EPOCH_ENTRIES = 200_000
export const MAX_COMMITTEE = 64

export interface EpochHeader {
  network: string
  epoch: number
  prev: Uint8Array | null
  entriesDigest: Uint8Array
  committee: string[]
  issuedAt: number
}

export interface CertifiedHeader {
  header: EpochHeader
  headerBytes: Uint8Array
  digest: Uint8Array
  certificate: Uint8Array
}

export interface Epoch extends CertifiedHeader {
  entries: SignedEntry[]
  bytes: Uint8Array
}

const headerShape = struct({
  network: str(128),
  epoch: uint(),
  prev: (raw: unknown, at: string) => raw === null ? null : bytes(32)(raw, at),
  entriesDigest: bytes(32),
  committee: list(peerId, MAX_COMMITTEE),
  issuedAt: uint()
})

export function sortEntries (entries: SignedEntry[]): SignedEntry[] {
  return [...entries].sort((a, b) => {
    const x = entryId(a.type, a.key)
    const y = entryId(b.type, b.key)
    return x < y ? -1 : x > y ? 1 : 0
  })
}

export function entriesDigestOf (sorted: SignedEntry[]): Uint8Array {
  return sha256(encodeCanonical(sorted.map(e => e.bytes)))
}

export function encodeHeader (header: EpochHeader): Uint8Array {
  return encodeCanonical({ ...header, committee: [...header.committee].sort() })
}

export function parseHeader (headerBytes: Uint8Array): EpochHeader {
  const header = headerShape(decodeCanonical(headerBytes), 'epoch.header') as EpochHeader
  for (let i = 1; i < header.committee.length; i++) if (header.committee[i - 1] >= header.committee[i]) throw new SchemaError('epoch.header.committee: not sorted and distinct')
  return header
}

/** Builds an unsigned epoch body; the BFT engine (or the network root, for epoch 0) certifies its digest. */
export function buildHeader (options: { network: string, epoch: number, prev: Uint8Array | null, entries: SignedEntry[], committee: string[], issuedAt: number }): { header: EpochHeader, headerBytes: Uint8Array, digest: Uint8Array, entries: SignedEntry[] } {
  const entries = sortEntries(options.entries)
  const header: EpochHeader = { network: options.network, epoch: options.epoch, prev: options.prev, entriesDigest: entriesDigestOf(entries), committee: [...new Set(options.committee)].sort(), issuedAt: options.issuedAt }
  const headerBytes = encodeHeader(header)
  return { header, headerBytes, digest: sha256(headerBytes), entries }
}

export function encodeEpoch (headerBytes: Uint8Array, certificate: Uint8Array, entries: SignedEntry[]): Uint8Array {
  return encodeCanonical([headerBytes, certificate, sortEntries(entries).map(e => e.bytes)])
}

/** Decodes untrusted epoch bytes; checks shape, entry schemas and the entries digest, not the certificate. */
export function decodeEpoch (data: Uint8Array): Epoch {
  if (data.length > MAX_EPOCH_BYTES) throw new EpochRejectedError(`epoch of ${data.length} bytes exceeds ${MAX_EPOCH_BYTES}`)
  let raw: unknown
  try {
    raw = decodeCanonical(data)
  } catch (err) {
    throw new EpochRejectedError(`epoch does not decode: ${(err as Error).message}`)
  }
  if (!Array.isArray(raw) || raw.length !== 3 || !(raw[0] instanceof Uint8Array) || !(raw[1] instanceof Uint8Array) || !Array.isArray(raw[2]) || raw[2].length > MAX_EPOCH_ENTRIES) throw new EpochRejectedError('epoch is not [header, certificate, entries]')
  let header: EpochHeader
  let entries: SignedEntry[]
  try {
    header = parseHeader(raw[0])
    entries = raw[2].map((b: unknown) => {
      if (!(b instanceof Uint8Array)) throw new SchemaError('epoch entry is not bytes')
      return decodeEntry(b)
    })
  } catch (err) {
    throw new EpochRejectedError(`epoch content is invalid: ${(err as Error).message}`)
  }
  for (let i = 1; i < entries.length; i++) {
    if (entryId(entries[i - 1].type, entries[i - 1].key) >= entryId(entries[i].type, entries[i].key)) throw new EpochRejectedError('epoch entries are not sorted and distinct')
  }
  if (!equalBytes(entriesDigestOf(entries), header.entriesDigest)) throw new EpochRejectedError('epoch entries do not match the header digest')
  return { header, headerBytes: raw[0], digest: sha256(raw[0]), certificate: raw[1], entries, bytes: data }
}

export function decodeCertifiedHeader (headerBytes: Uint8Array, certificate: Uint8Array): CertifiedHeader {
  try {
    return { header: parseHeader(headerBytes), headerBytes, digest: sha256(headerBytes), certificate }
  } catch (err) {
    throw new EpochRejectedError(`epoch header is invalid: ${(err as Error).message}`)
  }
}
