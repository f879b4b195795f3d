// Browser join requests: a tab without an invite link asks the administrator node to join;
// the operator sees the request in `mycelium status` and approves it with one command; the
// tab then collects an invite that only its own key can use. Requests arrive unauthenticated
// on the public HTTP port, so they are few, short-lived and carry nothing but a peer id.
import { peerIdFromString } from '@libp2p/peer-id'

const MAX_PENDING = 32
const REQUEST_TTL_MS = 15 * 60_000

export interface JoinRequest {
  peerId: string
  /** what the tab shows, so the operator approves the right one */
  code: string
  requestedAt: number
  approved: boolean
}

export class JoinRequestError extends Error {
  readonly name = 'JoinRequestError'
}

export function joinCode (peerId: string): string {
  return peerId.slice(-6).toUpperCase()
}

export class JoinRequests {
  private readonly requests = new Map<string, JoinRequest & { invite?: string }>()

  /** Records a request (again: refreshes it); refuses when too many are waiting. */
  add (peerId: string, now = Date.now()): JoinRequest {
    try {
      if (peerIdFromString(peerId).type !== 'Ed25519') throw new Error('not Ed25519')
    } catch {
      throw new JoinRequestError('not an Ed25519 peer id')
    }
    this.expire(now)
    const existing = this.requests.get(peerId)
    if (existing !== undefined) return view(existing)
    if (this.requests.size >= MAX_PENDING) throw new JoinRequestError('too many join requests are waiting; ask the operator for an invite link')
    const request = { peerId, code: joinCode(peerId), requestedAt: now, approved: false }
    this.requests.set(peerId, request)
    return view(request)
  }

  pending (now = Date.now()): JoinRequest[] {
    this.expire(now)
    return [...this.requests.values()].filter(r => !r.approved).map(view)
  }

  /** Finds a waiting request by peer id or by the code the tab shows. */
  find (idOrCode: string, now = Date.now()): JoinRequest | undefined {
    this.expire(now)
    const wanted = idOrCode.trim()
    return [...this.requests.values()].find(r => r.peerId === wanted || r.code === wanted.toUpperCase())
  }

  approve (peerId: string, invite: string): void {
    const request = this.requests.get(peerId)
    if (request === undefined) throw new JoinRequestError('no such join request (they expire after 15 min)')
    request.approved = true
    request.invite = invite
  }

  /** The invite for an approved request, handed out once. */
  collect (peerId: string): string | undefined {
    const request = this.requests.get(peerId)
    if (request?.invite === undefined) return undefined
    this.requests.delete(peerId)
    return request.invite
  }

  private expire (now: number): void {
    for (const [id, r] of this.requests) if (now - r.requestedAt > REQUEST_TTL_MS) this.requests.delete(id)
  }
}

function view (r: JoinRequest): JoinRequest {
  return { peerId: r.peerId, code: r.code, requestedAt: r.requestedAt, approved: r.approved }
}
