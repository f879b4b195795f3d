// The revocations a node knows, kept in its home (revocations.json) so a restart never
// forgets one. Entries are re-verified when the file is read: a tampered file cannot
// un-revoke anyone silently, it fails loudly instead.
import { fromBase64Url, toBase64Url } from '../../crypto/index.ts'
import { readJson, writeFileAtomic, type Home, type NetworkInfo } from '../home/index.ts'
import { decodeRevocation, encodeRevocation, type Revocation } from '../../membership/index.ts'

export const MAX_REVOCATIONS = 4096

export class RevocationList {
  private readonly home: Home
  private readonly network: NetworkInfo
  private readonly byPeer = new Map<string, Revocation>()

  constructor (home: Home, network: NetworkInfo) {
    this.home = home
    this.network = network
    const stored = readJson(home.path('revocations.json'), (v) => {
      if (!Array.isArray(v)) throw new Error('not a list')
      return v.map(s => {
        if (typeof s !== 'string') throw new Error('entries must be strings')
        return decodeRevocation(fromBase64Url(s), network.networkId, network.rootPublicKey)
      })
    }) ?? []
    for (const r of stored) this.byPeer.set(r.peerId, r)
  }

  has (peerId: string): boolean {
    return this.byPeer.has(peerId)
  }

  list (): Revocation[] {
    return [...this.byPeer.values()]
  }

  /** Verifies and stores revocations, skipping invalid ones; returns the ones that were new. */
  merge (encoded: Uint8Array[]): Revocation[] {
    const added: Revocation[] = []
    for (const bytes of encoded) {
      let r: Revocation
      try {
        r = decodeRevocation(bytes, this.network.networkId, this.network.rootPublicKey)
      } catch {
        continue
      }
      if (this.byPeer.has(r.peerId)) continue
      if (this.byPeer.size >= MAX_REVOCATIONS) break
      this.byPeer.set(r.peerId, r)
      added.push(r)
    }
    if (added.length > 0) this.save()
    return added
  }

  encoded (): Uint8Array[] {
    return this.list().map(encodeRevocation)
  }

  private save (): void {
    this.home.ensure()
    writeFileAtomic(this.home.path('revocations.json'), JSON.stringify(this.list().map(r => toBase64Url(encodeRevocation(r))), null, 2) + '\n')
  }
}
