// The revocations a node knows, kept in its home (revocations.json) so a restart never
// forgets one. Entries are re-verified when the file is read: a tampered file cannot
// un-revoke anyone silently, it fails loudly instead.
//
// The list is bounded (MAX_REVOCATIONS). A revocation whose `until` has passed can no longer
// matter (every certificate of that key has expired) and is pruned, which makes room. When the
// list is still full, a revocation this node signs is refused with RevocationListFullError (the
// administrator must hear it, never a silent success), and ones learned from peers are counted
// in `refused` for the exchange to report.
import { fromBase64Url, toBase64Url } from '../../crypto/index.ts'
import { readJson, writeFileAtomic, type Home, type NetworkInfo } from '../home/index.ts'
import { decodeRevocation, encodeRevocation, type Revocation } from '../../membership/index.ts'

export const MAX_REVOCATIONS = 4096

export class RevocationListFullError extends Error {
  readonly name = 'RevocationListFullError'
}

export class RevocationList {
  private readonly home: Home
  private readonly network: NetworkInfo
  private readonly now: () => number
  private readonly byPeer = new Map<string, Revocation>()
  /** valid new revocations learned from peers that found the list full */
  refused = 0

  constructor (home: Home, network: NetworkInfo, options: { now?: () => number } = {}) {
    this.home = home
    this.network = network
    this.now = options.now ?? Date.now
    const stored = readJson(home.path('revocations.json'), (v) => {
      if (!Array.isArray(v)) throw new Error('not a list')
      return v.map(s => {
        if (typeof s !== 'string') throw new Error('entries must be strings')
        return decodeRevocation(fromBase64Url(s), network.networkId, network.rootPublicKey)
      })
    }) ?? []
    for (const r of stored) this.byPeer.set(r.peerId, r)
    this.prune()
  }

  has (peerId: string): boolean {
    return this.byPeer.has(peerId)
  }

  list (): Revocation[] {
    return [...this.byPeer.values()]
  }

  get full (): boolean {
    this.prune()
    return this.byPeer.size >= MAX_REVOCATIONS
  }

  /** Stores a revocation this node signed; throws RevocationListFullError when it cannot be kept. */
  add (revocation: Revocation): boolean {
    if (this.byPeer.has(revocation.peerId)) return false
    if (this.full) throw new RevocationListFullError(`the revocation list of network ${this.network.name} is full (${MAX_REVOCATIONS} revocations that can still matter); ${revocation.peerId} was not revoked`)
    this.byPeer.set(revocation.peerId, revocation)
    this.save()
    return true
  }

  /** Verifies and stores revocations, skipping invalid ones; returns the ones that were new. */
  merge (encoded: Uint8Array[]): Revocation[] {
    const added: Revocation[] = []
    const now = this.now()
    const pruned = this.prune()
    for (const bytes of encoded) {
      let r: Revocation
      try {
        r = decodeRevocation(bytes, this.network.networkId, this.network.rootPublicKey)
      } catch {
        continue
      }
      // one that no longer matters is not worth a slot
      if (this.byPeer.has(r.peerId) || (r.until !== undefined && r.until <= now)) continue
      if (this.byPeer.size >= MAX_REVOCATIONS) { this.refused++; continue }
      this.byPeer.set(r.peerId, r)
      added.push(r)
    }
    if (added.length > 0 || pruned > 0) this.save()
    return added
  }

  encoded (): Uint8Array[] {
    return this.list().map(encodeRevocation)
  }

  /** Forgets revocations past their `until`; returns how many. */
  private prune (): number {
    const now = this.now()
    let n = 0
    for (const [peer, r] of this.byPeer) {
      if (r.until !== undefined && r.until <= now) { this.byPeer.delete(peer); n++ }
    }
    return n
  }

  private save (): void {
    this.home.ensure()
    writeFileAtomic(this.home.path('revocations.json'), JSON.stringify(this.list().map(r => toBase64Url(encodeRevocation(r))), null, 2) + '\n')
  }
}
