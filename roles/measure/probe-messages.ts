// Wire format of the probe protocol: length-prefixed frames; the first frame of a stream is
// a canonical-CBOR request, validated here before anything is done for the peer.
import { decodeCanonical, encodeCanonical } from '../../crypto/index.ts'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'

export const MAX_ECHO_ROUNDS = 16
export const MAX_ECHO_FRAME = 64
export const MAX_DOWNLOAD_BYTES = 1024 * 1024
export const DOWNLOAD_CHUNK = 64 * 1024
export const MAX_DIAL_BACK_ADDRS = 4
export const MAX_CONTROL_FRAME = 4096

export type ProbeRequest =
  | { op: 'echo', rounds: number }
  | { op: 'download', bytes: number }
  | { op: 'dialback', addrs: Multiaddr[] }

export type ProbeHeader = { ok: true } | { refused: string }

export interface DialBackResult {
  addr: string
  reachable: boolean
  error?: string
}

export class InvalidProbeMessageError extends Error {
  readonly name = 'InvalidProbeMessageError'
}

function record (bytes: Uint8Array): Record<string, unknown> {
  let value: unknown
  try {
    value = decodeCanonical(bytes)
  } catch (err) {
    throw new InvalidProbeMessageError((err as Error).message)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidProbeMessageError('probe message must be a map')
  return value as Record<string, unknown>
}

function count (value: unknown, min: number, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw new InvalidProbeMessageError(`${what} must be an integer ${min}–${max}`)
  return value
}

export function encodeProbeRequest (request: ProbeRequest): Uint8Array {
  if (request.op === 'dialback') return encodeCanonical({ op: 'dialback', addrs: request.addrs.map(a => a.toString()) })
  return encodeCanonical(request)
}

export function decodeProbeRequest (bytes: Uint8Array): ProbeRequest {
  const r = record(bytes)
  const keys = Object.keys(r).length
  switch (r.op) {
    case 'echo':
      if (keys !== 2) throw new InvalidProbeMessageError('echo takes { op, rounds }')
      return { op: 'echo', rounds: count(r.rounds, 1, MAX_ECHO_ROUNDS, 'rounds') }
    case 'download':
      if (keys !== 2) throw new InvalidProbeMessageError('download takes { op, bytes }')
      return { op: 'download', bytes: count(r.bytes, 1, MAX_DOWNLOAD_BYTES, 'bytes') }
    case 'dialback': {
      if (keys !== 2 || !Array.isArray(r.addrs) || r.addrs.length === 0 || r.addrs.length > MAX_DIAL_BACK_ADDRS) throw new InvalidProbeMessageError(`dialback takes { op, addrs } with 1–${MAX_DIAL_BACK_ADDRS} addresses`)
      const addrs = r.addrs.map(a => {
        if (typeof a !== 'string' || a.length > 256) throw new InvalidProbeMessageError('addresses must be short strings')
        try { return multiaddr(a) } catch { throw new InvalidProbeMessageError(`not a multiaddr: ${a.slice(0, 80)}`) }
      })
      return { op: 'dialback', addrs }
    }
    default:
      throw new InvalidProbeMessageError('unknown probe operation')
  }
}

export function encodeHeader (header: ProbeHeader): Uint8Array {
  return encodeCanonical(header)
}

export function decodeHeader (bytes: Uint8Array): ProbeHeader {
  const r = record(bytes)
  if (r.ok === true && Object.keys(r).length === 1) return { ok: true }
  if (typeof r.refused === 'string' && Object.keys(r).length === 1) return { refused: r.refused.slice(0, 200) }
  throw new InvalidProbeMessageError('malformed probe header')
}

export function encodeDialBackResults (results: DialBackResult[]): Uint8Array {
  return encodeCanonical({ results: results.map(r => r.error === undefined ? { addr: r.addr, reachable: r.reachable } : r) })
}

export function decodeDialBackResults (bytes: Uint8Array): DialBackResult[] {
  const r = record(bytes)
  if (!Array.isArray(r.results) || r.results.length > MAX_DIAL_BACK_ADDRS) throw new InvalidProbeMessageError('malformed dial-back results')
  return r.results.map((x: unknown) => {
    const e = x as Record<string, unknown>
    if (typeof e !== 'object' || e === null || typeof e.addr !== 'string' || typeof e.reachable !== 'boolean' || (e.error !== undefined && typeof e.error !== 'string')) throw new InvalidProbeMessageError('malformed dial-back result')
    return { addr: e.addr.slice(0, 256), reachable: e.reachable, ...(typeof e.error === 'string' ? { error: e.error.slice(0, 200) } : {}) }
  })
}
