// Catch-up of certified epochs by request/response with one peer at a time, instead of whole
// epochs published on gossip: a lagging member's lag then costs only the member it asks, and a
// member that asks over and over costs only the members it asks (who ration it, see
// node/consensus/catch-up-stream.ts).
//
// Request:  canonical CBOR { from, max, base }: the first epoch wanted, how many at most
//           (1..MAX_CATCH_UP_EPOCHS), and whether the asker holds the entries of epoch from-1
//           (then epochs come as deltas against it, epoch-delta.ts).
// Response: canonical CBOR { items, held }: up to `max` consecutive epochs from `from`, each
//           { c: certificate, d: delta against the epoch before } or, when either side lacks the
//           previous entries, { c: certificate, h: header bytes, e: entries | null }; `held` is
//           the responder's latest epoch. Items are added while the response stays under
//           MAX_CATCH_UP_RESPONSE_BYTES; the asker asks again for the rest. No items while
//           `held` is newer: the responder no longer holds those epochs in memory, and the asker
//           turns to the certified headers it keeps longer (light sync, header-sync.ts).
//
// The responder is never trusted: every epoch is adopted through PrimaryEpochs.adopt, the check
// an epoch from gossip gets (the certificate is a quorum of the committee drawn from the epoch
// before, seeded by its digest, certifying the digest of a header that extends the held chain;
// entries must build that header). One item that fails ends the use of that responder.
import { encodeCanonical, decodeCanonical } from '../crypto/index.ts'
import { encodeEpochProposal } from './epoch-delta.ts'
import type { EpochChain } from './epoch-chain.ts'

export const MAX_CATCH_UP_EPOCHS = 16
export const MAX_CATCH_UP_REQUEST_BYTES = 64
/** The responder stops adding epochs past this; one epoch alone may exceed it up to the frame limit. */
export const MAX_CATCH_UP_RESPONSE_BYTES = 1024 * 1024
/** The largest response frame either side reads or writes (an epoch with all its entries). */
export const MAX_CATCH_UP_FRAME_BYTES = 8 * 1024 * 1024

export class CatchUpProtocolError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CatchUpProtocolError'
  }
}

export interface CatchUpRequest { from: number, max: number, base: boolean }

export type CatchUpItem =
  | { c: Uint8Array, d: Uint8Array }
  | { c: Uint8Array, h: Uint8Array, e: Uint8Array[] | null }

export interface CatchUpResponse { items: CatchUpItem[], held: number }

export function encodeCatchUpRequest (r: CatchUpRequest): Uint8Array {
  return encodeCanonical(r)
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

export function decodeMap (data: Uint8Array, max: number, what: string): Record<string, unknown> {
  if (data.length > max) throw new CatchUpProtocolError(`${what} of ${data.length} bytes exceeds ${max}`)
  let raw: unknown
  try {
    raw = decodeCanonical(data)
  } catch (err) {
    throw new CatchUpProtocolError(`${what} does not decode: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array) throw new CatchUpProtocolError(`${what} is not a map`)
  return raw as Record<string, unknown>
}

export function decodeCatchUpRequest (data: Uint8Array): CatchUpRequest {
  const raw = decodeMap(data, MAX_CATCH_UP_REQUEST_BYTES, 'catch-up request')
  if (Object.keys(raw).length !== 3 || !isCount(raw.from) || raw.from < 1 || !isCount(raw.max) || raw.max < 1 || raw.max > MAX_CATCH_UP_EPOCHS || typeof raw.base !== 'boolean') {
    throw new CatchUpProtocolError(`catch-up request must be { from >= 1, max 1..${MAX_CATCH_UP_EPOCHS}, base: boolean }`)
  }
  return { from: raw.from, max: raw.max, base: raw.base }
}

export function decodeCatchUpResponse (data: Uint8Array, request: CatchUpRequest): CatchUpResponse {
  const raw = decodeMap(data, MAX_CATCH_UP_FRAME_BYTES, 'catch-up response')
  if (Object.keys(raw).length !== 2 || !isCount(raw.held) || !Array.isArray(raw.items) || raw.items.length > request.max) throw new CatchUpProtocolError('catch-up response must be { items (at most the asked count), held }')
  const items = raw.items.map((it: unknown, i): CatchUpItem => {
    const m = it as Record<string, unknown>
    if (m === null || typeof m !== 'object' || Array.isArray(m) || !isBytes(m.c)) throw new CatchUpProtocolError(`catch-up item ${i} has no certificate`)
    const keys = Object.keys(m).length
    if (keys === 2 && isBytes(m.d)) return { c: m.c, d: m.d }
    if (keys === 3 && isBytes(m.h) && (m.e === null || (Array.isArray(m.e) && m.e.every(isBytes)))) return { c: m.c, h: m.h, e: m.e as Uint8Array[] | null }
    throw new CatchUpProtocolError(`catch-up item ${i} is neither { c, d } nor { c, h, e }`)
  })
  return { items, held: raw.held }
}

/** The response to `request` from the epochs this node holds (bounded in count and bytes). */
export function answerCatchUp (chain: EpochChain, request: CatchUpRequest): Uint8Array {
  const latest = chain.latest()
  const items: CatchUpItem[] = []
  let size = 0
  let base = request.base
  for (let n = request.from; latest !== undefined && n <= Math.min(latest.epoch, request.from + request.max - 1); n++) {
    const r = chain.get(n)
    const prev = chain.get(n - 1)
    // Whole (or by header) an epoch needs nothing before it: a member that restarted, holding
    // only its latest epoch, still serves that one to an asker that checked the headers up to it.
    if (r === undefined) break
    let item: CatchUpItem = base && r.entries !== undefined && prev?.entries !== undefined
      ? { c: r.certificate, d: encodeEpochProposal({ epoch: r.epoch, prev: prev.digest, issuedAt: r.issuedAt, entries: r.entries, candidates: r.candidates }, prev as typeof prev & { entries: Uint8Array[] }) }
      : { c: r.certificate, h: r.headerBytes, e: r.entries ?? null }
    let bytes = encodeCanonical(item).length
    if (items.length === 0 && bytes > MAX_CATCH_UP_FRAME_BYTES - 1024 && 'h' in item) {
      // Too large to send whole: the header still lets the asker check the chain.
      item = { c: r.certificate, h: r.headerBytes, e: null }
      bytes = encodeCanonical(item).length
    }
    if (items.length > 0 && size + bytes > MAX_CATCH_UP_RESPONSE_BYTES) break
    items.push(item)
    size += bytes
    // Once the asker holds an epoch's entries from this response, the next can be a delta.
    base = 'd' in item || ('e' in item && item.e !== null)
  }
  return encodeCanonical({ items, held: latest?.epoch ?? 0 })
}
