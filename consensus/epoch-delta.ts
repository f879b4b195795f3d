// How an epoch travels in a proposal: what changed since the previous certified epoch, not the
// whole snapshot. `added` holds the entries (canonical bytes) that are new or replace an older
// version; `removed` the sha256 of each previous entry that is gone (expired, left the window,
// or replaced). A member rebuilds the full body from the previous epoch it holds, then judges
// and builds it as before. So a proposal's size follows the churn of an epoch, not the size of
// the primary spore: 5,000 entries that did not change cost nothing to carry.
// Wire form (the round input): canonical CBOR { epoch, prev, issuedAt, added, removed, candidates }.
import { encodeCanonical, decodeCanonical, sha256, toHex, equalBytes } from '../crypto/index.ts'
import { MAX_COMMITTEE } from './messages.ts'
import { EpochProposalError } from './errors.ts'

/** The full body of the next epoch (what members judge and build; the round input is its delta). */
export interface EpochBody {
  epoch: number
  prev: Uint8Array
  issuedAt: number
  /** Canonical entry bytes. */
  entries: Uint8Array[]
  /** Candidates for the committee of the epoch after this one. */
  candidates: string[]
}

/** The previous epoch as a delta is read against. */
export interface DeltaBase {
  epoch: number
  digest: Uint8Array
  issuedAt: number
  entries: readonly Uint8Array[]
}

// Members read every proposal of an epoch against the same previous one: its hashes are kept.
const hashed = new Map<string, Map<string, number>>()
const HASHED_MAX = 8

function hashesOf (base: DeltaBase): Map<string, number> {
  const id = toHex(base.digest)
  let h = hashed.get(id)
  if (h === undefined) {
    h = new Map(base.entries.map((e, i) => [toHex(sha256(e)), i]))
    if (hashed.size >= HASHED_MAX) hashed.delete(hashed.keys().next().value as string)
    hashed.set(id, h)
  }
  return h
}

/** The round input for `body`, which builds on `base`. */
export function encodeEpochProposal (body: EpochBody, base: DeltaBase): Uint8Array {
  const before = hashesOf(base)
  const now = new Set<string>()
  const added: Uint8Array[] = []
  for (const e of body.entries) {
    const h = toHex(sha256(e))
    now.add(h)
    if (!before.has(h)) added.push(e)
  }
  const removed = [...before.keys()].filter(h => !now.has(h)).sort().map(h => Uint8Array.from(Buffer.from(h, 'hex')))
  return encodeCanonical({ epoch: body.epoch, prev: body.prev, issuedAt: body.issuedAt, added, removed, candidates: body.candidates })
}

/** Rebuilds the full body of a proposal against `base`; throws EpochProposalError (or NonCanonicalEncodingError) for input that is not one. */
export function decodeEpochProposal (input: Uint8Array, base: DeltaBase): EpochBody {
  const raw = decodeCanonical(input) as Record<string, unknown>
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || Object.keys(raw).length !== 6) throw new EpochProposalError('epoch proposal: expected 6 fields')
  if (raw.epoch !== base.epoch + 1) throw new EpochProposalError('epoch proposal: wrong epoch number')
  if (!(raw.prev instanceof Uint8Array) || !equalBytes(raw.prev, base.digest)) throw new EpochProposalError('epoch proposal: does not extend the previous epoch')
  if (typeof raw.issuedAt !== 'number' || !Number.isSafeInteger(raw.issuedAt) || raw.issuedAt <= base.issuedAt) throw new EpochProposalError('epoch proposal: issuedAt not after the previous epoch')
  if (!Array.isArray(raw.added) || !raw.added.every(e => e instanceof Uint8Array)) throw new EpochProposalError('epoch proposal: added entries are not bytes')
  if (!Array.isArray(raw.removed) || !raw.removed.every(h => h instanceof Uint8Array && h.length === 32)) throw new EpochProposalError('epoch proposal: removed is not a list of sha256 digests')
  if (!Array.isArray(raw.candidates) || raw.candidates.length === 0 || raw.candidates.length > MAX_COMMITTEE || !raw.candidates.every(c => typeof c === 'string')) throw new EpochProposalError('epoch proposal: bad candidates')
  const before = hashesOf(base)
  const gone = new Set<number>()
  for (const h of raw.removed as Uint8Array[]) {
    const i = before.get(toHex(h))
    if (i === undefined) throw new EpochProposalError('epoch proposal: removes an entry the previous epoch does not hold')
    if (gone.has(i)) throw new EpochProposalError('epoch proposal: removes one entry twice')
    gone.add(i)
  }
  const entries = [...base.entries.filter((_, i) => !gone.has(i)), ...(raw.added as Uint8Array[])]
  return { epoch: raw.epoch, prev: raw.prev, issuedAt: raw.issuedAt, entries, candidates: raw.candidates as string[] }
}
