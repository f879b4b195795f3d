// The messages of the gateway protocol, decoded once at the edge. A gateway stream carries, each
// way, one head (the request: application, method, path, headers; the answer: status, headers),
// then the body as data frames, then an end frame; credit frames go the other way and say how
// many more body bytes the reader can take, so a body of any size crosses the mesh with a
// bounded amount of it in memory. Heads are bounded as before; a header that is malformed or
// belongs to one connection only is dropped. Anything else malformed is refused as a whole.
import { decodeCanonical, encodeCanonical } from '../../crypto/index.ts'
import { APP_NAME } from '../../spores/entry/types.ts'

export class InvalidGatewayMessageError extends Error {
  readonly name = 'InvalidGatewayMessageError'
}

export const MAX_HEADERS = 100
/** The largest head (Node's HTTP parser stops at 16 KiB of headers, so a real one is far smaller) and the largest data frame. */
export const MAX_FRAME_BYTES = 64 * 1024
/** Body bytes a reader takes before it must grant more credit: what one stream holds in memory per direction. */
export const WINDOW_BYTES = 256 * 1024
/** Headers of one connection, not of the message (RFC 9110 §7.6.1), and what the gateway sets itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length'])

export interface RequestHead { app: string, method: string, path: string, headers: Array<[string, string]> }
export interface AnswerHead { status: number, headers: Array<[string, string]> }

export type GatewayFrame =
  | { kind: 'head', bytes: Uint8Array }
  | { kind: 'data', bytes: Uint8Array }
  | { kind: 'end' }
  | { kind: 'credit', bytes: number }

const TAG = { head: 1, data: 2, end: 3, credit: 4 } as const

export function encodeFrame (frame: GatewayFrame): Uint8Array {
  switch (frame.kind) {
    case 'head':
    case 'data': {
      const out = new Uint8Array(1 + frame.bytes.length)
      out[0] = TAG[frame.kind]
      out.set(frame.bytes, 1)
      return out
    }
    case 'end': return Uint8Array.of(TAG.end)
    case 'credit': {
      const out = new Uint8Array(5)
      out[0] = TAG.credit
      new DataView(out.buffer).setUint32(1, frame.bytes)
      return out
    }
  }
}

export function decodeFrame (bytes: Uint8Array): GatewayFrame {
  if (bytes.length === 0 || bytes.length > MAX_FRAME_BYTES + 1) throw new InvalidGatewayMessageError(`frame of ${bytes.length} bytes`)
  const body = bytes.subarray(1)
  switch (bytes[0]) {
    case TAG.head: return { kind: 'head', bytes: body }
    case TAG.data:
      if (body.length === 0) throw new InvalidGatewayMessageError('empty data frame')
      return { kind: 'data', bytes: body }
    case TAG.end:
      if (body.length !== 0) throw new InvalidGatewayMessageError('end frame with a payload')
      return { kind: 'end' }
    case TAG.credit: {
      if (body.length !== 4) throw new InvalidGatewayMessageError('credit frame is malformed')
      const granted = new DataView(body.buffer, body.byteOffset, 4).getUint32(0)
      if (granted === 0 || granted > WINDOW_BYTES) throw new InvalidGatewayMessageError(`credit of ${granted} bytes`)
      return { kind: 'credit', bytes: granted }
    }
    default: throw new InvalidGatewayMessageError(`unknown frame type ${bytes[0]}`)
  }
}

function decode (bytes: Uint8Array): Record<string, unknown> {
  let raw: unknown
  try {
    raw = decodeCanonical(bytes)
  } catch (err) {
    throw new InvalidGatewayMessageError(`gateway head is not decodable: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidGatewayMessageError('gateway head is malformed')
  return raw as Record<string, unknown>
}

export function cleanHeaders (raw: unknown): Array<[string, string]> {
  if (!Array.isArray(raw) || raw.length > MAX_HEADERS) throw new InvalidGatewayMessageError('headers are malformed')
  return raw.filter((h): h is [string, string] => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string' && h[0].length <= 256 && h[1].length <= 8192)
    .filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase()))
}

/** A head as it goes out; one too large for a frame is refused here, before anything is sent. */
export function encodeHead (head: RequestHead | AnswerHead): Uint8Array {
  const bytes = encodeCanonical(head)
  if (bytes.length > MAX_FRAME_BYTES) throw new InvalidGatewayMessageError(`head of ${bytes.length} bytes is larger than ${MAX_FRAME_BYTES}`)
  return bytes
}

export function decodeRequestHead (bytes: Uint8Array): RequestHead {
  const raw = decode(bytes)
  const { app, method, path, headers } = raw
  if (typeof app !== 'string' || !APP_NAME.test(app)) throw new InvalidGatewayMessageError('request names no application')
  if (typeof method !== 'string' || !/^[A-Z]{1,16}$/.test(method)) throw new InvalidGatewayMessageError('request method is malformed')
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > 8192) throw new InvalidGatewayMessageError('request path is malformed')
  return { app, method, path, headers: cleanHeaders(headers) }
}

export function decodeAnswerHead (bytes: Uint8Array): AnswerHead {
  const raw = decode(bytes)
  const { status, headers } = raw
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) throw new InvalidGatewayMessageError('answer status is malformed')
  return { status, headers: cleanHeaders(headers) }
}
