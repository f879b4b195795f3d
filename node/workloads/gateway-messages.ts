// The messages of the gateway protocol, decoded once at the edge: a request carried from the
// sclerotium that took it to the node running the instance, and the answer carried back. Both
// are bounded; a header that is malformed or belongs to one connection only is dropped.
import { decodeCanonical } from '../../crypto/index.ts'
import { APP_NAME } from '../../spores/entry/types.ts'

export class InvalidGatewayMessageError extends Error {
  readonly name = 'InvalidGatewayMessageError'
}

export const MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024
export const MAX_RESPONSE_BODY_BYTES = 16 * 1024 * 1024
export const MAX_HEADERS = 100
/** Headers of one connection, not of the message (RFC 9110 §7.6.1), and what the gateway sets itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length'])

export interface GatewayRequest { app: string, method: string, path: string, headers: Array<[string, string]>, body: Uint8Array }
export interface GatewayAnswer { status: number, headers: Array<[string, string]>, body: Uint8Array }

function decode (bytes: Uint8Array): Record<string, unknown> {
  try {
    return decodeCanonical(bytes) as Record<string, unknown>
  } catch (err) {
    throw new InvalidGatewayMessageError(`gateway message is not decodable: ${(err as Error).message}`)
  }
}

export function cleanHeaders (raw: unknown): Array<[string, string]> {
  if (!Array.isArray(raw) || raw.length > MAX_HEADERS) throw new InvalidGatewayMessageError('headers are malformed')
  return raw.filter((h): h is [string, string] => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string' && h[0].length <= 256 && h[1].length <= 8192)
    .filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase()))
}

export function decodeGatewayRequest (bytes: Uint8Array): GatewayRequest {
  const raw = decode(bytes)
  if (raw === null || typeof raw !== 'object') throw new InvalidGatewayMessageError('request is malformed')
  const { app, method, path, headers, body } = raw
  if (typeof app !== 'string' || !APP_NAME.test(app)) throw new InvalidGatewayMessageError('request names no application')
  if (typeof method !== 'string' || !/^[A-Z]{1,16}$/.test(method)) throw new InvalidGatewayMessageError('request method is malformed')
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > 8192) throw new InvalidGatewayMessageError('request path is malformed')
  if (!(body instanceof Uint8Array) || body.length > MAX_REQUEST_BODY_BYTES) throw new InvalidGatewayMessageError('request body is malformed')
  return { app, method, path, headers: cleanHeaders(headers), body }
}

export function decodeGatewayAnswer (bytes: Uint8Array): GatewayAnswer {
  const raw = decode(bytes)
  if (raw === null || typeof raw !== 'object') throw new InvalidGatewayMessageError('answer is malformed')
  const { status, headers, body } = raw
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) throw new InvalidGatewayMessageError('answer status is malformed')
  if (!(body instanceof Uint8Array)) throw new InvalidGatewayMessageError('answer body is malformed')
  return { status, headers: cleanHeaders(headers), body }
}
