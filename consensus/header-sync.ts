// Light sync, for a member further behind than members keep whole epochs: it fetches the
// certified headers from its own latest epoch on in pages, checks every link as it would an
// epoch's (each certificate against the committee drawn from the header before it,
// epoch-certificate.ts), and only then takes one epoch whole, checked against the last verified
// header (catch-up.ts). Members keep headers far longer than entries (RetainedHeaders: on disk,
// a week of epochs at the default interval); a member further behind than that finds no chain it
// could check, and adopts nothing.
//
// Request:  canonical CBOR { headers: first epoch wanted, max: 1..MAX_HEADER_PAGE }
// Response: canonical CBOR { headers: [[header bytes, certificate], ...], held, oldest }: the
//           kept pairs of consecutive epochs from the first one asked (at most `max`, the whole
//           response at most MAX_HEADER_PAGE_BYTES), the responder's latest epoch, and the oldest
//           epoch whose header it keeps. A page that is larger or longer than that, or that does
//           not hold consecutive epochs from the one asked, is the responder's lie.
import { encodeCanonical } from '../crypto/index.ts'
import { CatchUpProtocolError, decodeMap } from './catch-up.ts'
import type { EpochChain } from './epoch-chain.ts'

export const MAX_HEADER_PAGE = 512
export const MAX_HEADER_PAGE_BYTES = 1024 * 1024

export type HeaderPair = [Uint8Array, Uint8Array]

/** The certified headers a node keeps for a long time (the primary tier's archive). */
export interface RetainedHeaders {
  /** Kept [header, certificate] pairs of epochs from..to, oldest first, at most `max`; contiguous from oldest() on. */
  headers: (from: number, to: number, max: number) => Promise<HeaderPair[]>
  /** The oldest epoch whose header is kept. */
  oldest: () => number | undefined
  /** How many epochs' headers are kept. */
  retention: number
  /** Stores certified header-only epochs in chain order (the store checks every link again). */
  keep: (pairs: HeaderPair[]) => Promise<void>
}

export interface HeaderPageRequest { headers: number, max: number }
export interface HeaderPage { headers: HeaderPair[], held: number, oldest: number }

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

export function encodeHeaderPageRequest (r: HeaderPageRequest): Uint8Array {
  return encodeCanonical(r)
}

/** Whether a decoded catch-up request map asks for headers (then it must be a valid header request). */
export function isHeaderPageRequest (raw: Record<string, unknown>): boolean {
  return 'headers' in raw
}

export function headerPageRequestOf (raw: Record<string, unknown>): HeaderPageRequest {
  if (Object.keys(raw).length !== 2 || !isCount(raw.headers) || raw.headers < 1 || !isCount(raw.max) || raw.max < 1 || raw.max > MAX_HEADER_PAGE) {
    throw new CatchUpProtocolError(`header request must be { headers >= 1, max 1..${MAX_HEADER_PAGE} }`)
  }
  return { headers: raw.headers, max: raw.max }
}

export function decodeHeaderPage (data: Uint8Array, request: HeaderPageRequest): HeaderPage {
  const raw = decodeMap(data, MAX_HEADER_PAGE_BYTES, 'header page')
  if (Object.keys(raw).length !== 3 || !isCount(raw.held) || !isCount(raw.oldest) || !Array.isArray(raw.headers) || raw.headers.length > request.max) {
    throw new CatchUpProtocolError('header page must be { headers (at most the asked count), held, oldest }')
  }
  const headers = raw.headers.map((p: unknown, i): HeaderPair => {
    if (!Array.isArray(p) || p.length !== 2 || !(p[0] instanceof Uint8Array) || !(p[1] instanceof Uint8Array)) throw new CatchUpProtocolError(`header page item ${i} is not [header, certificate]`)
    return [p[0], p[1]]
  })
  return { headers, held: raw.held, oldest: raw.oldest }
}

/**
 * The page of kept headers for `request`: from the epochs held in memory, else from the retained
 * ones (`epochOf` reads a stored header's number: one pruned meanwhile ends the page, not a gap).
 */
export async function answerHeaderPage (chain: EpochChain, retained: RetainedHeaders | undefined, request: HeaderPageRequest, epochOf: (headerBytes: Uint8Array) => number): Promise<Uint8Array> {
  const held = chain.latest()?.epoch ?? 0
  const kept = retained?.oldest()
  const oldest = Math.min(kept ?? Infinity, chain.oldest() ?? Infinity)
  const last = Math.min(held, request.headers + request.max - 1)
  const headers: HeaderPair[] = []
  // room for the map around the pairs; each pair costs its bytes and at most 12 bytes of framing
  let size = 64
  const add = (pair: HeaderPair): boolean => {
    const bytes = pair[0].length + pair[1].length + 12
    if (size + bytes > MAX_HEADER_PAGE_BYTES) return false
    headers.push(pair)
    size += bytes
    return true
  }
  let n = request.headers
  fill: while (n <= last) {
    const r = chain.get(n)
    if (r !== undefined) {
      if (!add([r.headerBytes, r.certificate])) break
      n++
      continue
    }
    if (retained === undefined || kept === undefined || n < kept) break
    const stored = await retained.headers(n, last, last - n + 1)
    if (stored.length === 0) break
    for (const pair of stored) {
      if (epochOf(pair[0]) !== n || !add(pair)) break fill
      n++
    }
  }
  return encodeCanonical({ headers, held, oldest: Number.isFinite(oldest) ? oldest : held })
}
