// Browser join requests: a tab without an invite link asks the administrator node to join;
// the operator sees the request in `mycelium status` and approves it by the code the tab
// shows; the tab then collects an invite that only its own key can use. Requests arrive
// unauthenticated on the public HTTP port, so:
// - the code is random, drawn by this node (approval-code.ts), so no request can be made to
//   look like another; a peer id is accepted for approval only in full;
// - one source address holds at most MAX_PER_SOURCE waiting requests, and the queue drops
//   its oldest waiting request for a new one, so a single source can never fill it (the HTTP
//   layer also rate-limits each source);
// - the approved invite is handed out only against a signature of the request id by the
//   requesting key (join-proof.ts); the request id itself is random and given only to the asker.
import { publicKeyOfPeerId, randomBytesOf, toBase64Url, verify } from '../../crypto/index.ts'
import { collectProofMessage } from '../../browser-client/index.ts'
import { newApprovalCode, normalizeApprovalCode } from './approval-code.ts'

const MAX_PENDING = 32
const MAX_PER_SOURCE = 4
export const JOIN_REQUEST_TTL_MS = 15 * 60_000

export interface JoinRequest {
  peerId: string
  /** what the tab shows, so the operator approves the right one */
  code: string
  /** the source address it came from (an IPv6 /64) */
  from: string
  requestedAt: number
  approved: boolean
}

interface HeldRequest extends JoinRequest {
  requestId: string
  invite?: string
}

export type CollectAnswer = { status: 'approved', invite: string } | { status: 'pending' }

/** Malformed input (a peer id that is no Ed25519 key, …): the asker's mistake. */
export class JoinRequestError extends Error {
  readonly name: string = 'JoinRequestError'
}

/** No such request: never made, expired, dropped for newer ones, or already collected. */
export class UnknownJoinRequestError extends JoinRequestError {
  readonly name = 'UnknownJoinRequestError'
}

/** The collect was not signed by the key that asked. */
export class JoinProofError extends JoinRequestError {
  readonly name = 'JoinProofError'
}

export class JoinRequests {
  /** by request id, in arrival order */
  private readonly requests = new Map<string, HeldRequest>()

  /** Records a request; returns what only the asker learns: its request id and code. */
  add (peerId: string, from: string, now = Date.now()): { requestId: string, code: string, expiresAt: number } {
    try {
      publicKeyOfPeerId(peerId)
    } catch {
      throw new JoinRequestError('peerId must be the Ed25519 peer id of the tab')
    }
    this.expire(now)
    const waiting = [...this.requests.values()].filter(r => !r.approved)
    const fromSource = waiting.filter(r => r.from === from)
    if (fromSource.length >= MAX_PER_SOURCE) this.requests.delete(fromSource[0].requestId)
    else if (waiting.length >= MAX_PENDING) this.requests.delete(waiting[0].requestId)
    const taken = new Set([...this.requests.values()].map(r => r.code))
    let code = newApprovalCode()
    while (taken.has(code)) code = newApprovalCode()
    const requestId = toBase64Url(randomBytesOf(16))
    this.requests.set(requestId, { requestId, peerId, code, from, requestedAt: now, approved: false })
    return { requestId, code, expiresAt: now + JOIN_REQUEST_TTL_MS }
  }

  /** Requests waiting for the operator, oldest first. */
  pending (now = Date.now()): JoinRequest[] {
    this.expire(now)
    return [...this.requests.values()].filter(r => !r.approved).map(view)
  }

  /** A waiting request by the code its tab shows (any case, dash optional), or by its full peer id (the newest one). */
  find (codeOrPeerId: string, now = Date.now()): JoinRequest | undefined {
    const held = this.findHeld(codeOrPeerId, now)
    return held === undefined ? undefined : view(held)
  }

  /** Marks the request found by code or peer id approved, with the invite issued for its key. */
  approve (codeOrPeerId: string, invite: (request: JoinRequest) => string, now = Date.now()): JoinRequest {
    const held = this.findHeld(codeOrPeerId, now)
    if (held === undefined) throw new UnknownJoinRequestError('no such join request is waiting (they expire after 15 min)')
    held.invite = invite(view(held))
    held.approved = true
    return view(held)
  }

  /** The invite of an approved request, handed out once, to the holder of the requesting key. */
  collect (requestId: string, signature: Uint8Array, now = Date.now()): CollectAnswer {
    this.expire(now)
    const held = this.requests.get(requestId)
    if (held === undefined) throw new UnknownJoinRequestError('no such join request: it expired, was replaced by newer ones, or was collected')
    if (!verify(publicKeyOfPeerId(held.peerId), collectProofMessage(requestId), signature)) throw new JoinProofError('the signature is not the requesting key\'s')
    if (held.invite === undefined) return { status: 'pending' }
    this.requests.delete(requestId)
    return { status: 'approved', invite: held.invite }
  }

  private findHeld (codeOrPeerId: string, now: number): HeldRequest | undefined {
    this.expire(now)
    const code = normalizeApprovalCode(codeOrPeerId)
    const waiting = [...this.requests.values()].filter(r => !r.approved)
    if (code !== undefined) return waiting.find(r => r.code === code)
    return waiting.findLast(r => r.peerId === codeOrPeerId.trim())
  }

  private expire (now: number): void {
    for (const [id, r] of this.requests) if (now - r.requestedAt > JOIN_REQUEST_TTL_MS) this.requests.delete(id)
  }
}

function view (r: HeldRequest): JoinRequest {
  return { peerId: r.peerId, code: r.code, from: r.from, requestedAt: r.requestedAt, approved: r.approved }
}
