// The public HTTP endpoints of browser join requests, on the node's web-client port:
//   POST /join-requests          { peerId }                → 202 { requestId, code, expiresAt }
//   POST /join-requests/collect  { requestId, signature }  → 200 { status: 'pending' | 'approved', invite? }
// Bodies are decoded here, once; every refusal is a 4xx with { error }. Each source address
// has a small budget of asks and a larger one of polls (a tab polls every 2 s), so a flood
// from one machine gets 429 while other machines still get in.
import { fromBase64Url } from '../../crypto/index.ts'
import type { SiteAnswer, SiteEndpoint } from './static-site.ts'
import { SourceRateLimit, sourceOf, type RateBudget } from './source-rate-limit.ts'
import { JoinRequestError, JoinProofError, UnknownJoinRequestError, type JoinRequests } from './join-requests.ts'

/** Asks: four at once, then one every 15 s per source. */
export const ASK_BUDGET: RateBudget = { burst: 4, refillMs: 15_000 }
/** Polls: a few tabs behind one address polling every 2 s fit easily. */
export const COLLECT_BUDGET: RateBudget = { burst: 20, refillMs: 250 }

export interface JoinRequestEndpointsOptions {
  requests: JoinRequests
  /** why this node takes no join requests (it holds no root key), or undefined */
  refusal: () => string | undefined
  onAsked: (request: { peerId: string, code: string, from: string }) => void
  asks?: RateBudget
  collects?: RateBudget
}

const refused = (status: number, error: string, headers?: Record<string, string>): SiteAnswer => ({ status, body: { error }, headers })

function field (body: unknown, name: string, maxLength: number): string | undefined {
  const value = (body !== null && typeof body === 'object' ? body as Record<string, unknown> : {})[name]
  return typeof value === 'string' && value.length > 0 && value.length <= maxLength ? value : undefined
}

export function joinRequestEndpoints (options: JoinRequestEndpointsOptions): Record<string, SiteEndpoint> {
  const asks = new SourceRateLimit(options.asks ?? ASK_BUDGET)
  const collects = new SourceRateLimit(options.collects ?? COLLECT_BUDGET)
  const tooMany = (waitMs: number, what: string): SiteAnswer =>
    refused(429, `too many ${what} from your address: try again in ${Math.ceil(waitMs / 1000)} s`, { 'retry-after': String(Math.ceil(waitMs / 1000)) })

  return {
    'POST /join-requests': ({ body, remoteAddress }) => {
      const from = sourceOf(remoteAddress)
      const wait = asks.take(from)
      if (wait !== undefined) return tooMany(wait, 'join requests')
      const refusal = options.refusal()
      if (refusal !== undefined) return refused(403, refusal)
      const peerId = field(body, 'peerId', 128)
      if (peerId === undefined) return refused(400, 'expected a JSON body { "peerId": "<the tab\'s Ed25519 peer id>" }')
      try {
        const asked = options.requests.add(peerId, from)
        options.onAsked({ peerId, code: asked.code, from })
        return { status: 202, body: asked }
      } catch (err) {
        if (err instanceof JoinRequestError) return refused(400, err.message)
        throw err
      }
    },
    'POST /join-requests/collect': ({ body, remoteAddress }) => {
      const wait = collects.take(sourceOf(remoteAddress))
      if (wait !== undefined) return tooMany(wait, 'polls')
      const requestId = field(body, 'requestId', 64)
      const signature = field(body, 'signature', 128)
      if (requestId === undefined || signature === undefined) return refused(400, 'expected a JSON body { "requestId", "signature" } (base64url Ed25519 signature of the request id)')
      let signatureBytes: Uint8Array
      try {
        signatureBytes = fromBase64Url(signature)
      } catch {
        return refused(400, 'signature is not base64url')
      }
      try {
        return { status: 200, body: options.requests.collect(requestId, signatureBytes) }
      } catch (err) {
        if (err instanceof UnknownJoinRequestError) return refused(404, err.message)
        if (err instanceof JoinProofError) return refused(403, err.message)
        if (err instanceof JoinRequestError) return refused(400, err.message)
        throw err
      }
    }
  }
}
