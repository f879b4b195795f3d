// libp2p writes the protocol of every stream into the remote peer's record in the peer store,
// on both sides, before the stream is handed over: the whole record (addresses, protocols,
// tags, metadata) is read, decoded, merged, encoded and written again, under the peer's write
// lock, even when the record lists the protocol already, which it does from the second stream
// of a protocol on. A starting member opens dozens of streams per link (identify, roster, role
// views, revocations, spores sync and epochs, gossip, DHT), and these rewrites were the largest
// share of the peer store's time, itself a tenth of the CPU a member spent to mesh.
//
// Here such a merge is answered without touching the store when the record already lists every
// protocol it names. What the record lists is followed from the peer store's own `peer:update`
// events, which carry the whole record after every change (its creation included), in the
// order of the writes, so a record whose protocols were replaced since (identify does that) is
// merged into again.
import type { Libp2p, Peer, PeerData, PeerId, PeerStore, AbortOptions } from '@libp2p/interface'

/** Records followed; past this the oldest are forgotten (their next merge goes to the store). */
const RECORDS_KEPT = 4_096

/** True when the update names nothing but protocols, all of which `peer` lists. */
function adds (peer: Peer | undefined, data: PeerData): boolean {
  const keys = Object.keys(data).filter(k => (data as Record<string, unknown>)[k] !== undefined)
  if (peer === undefined || keys.length !== 1 || keys[0] !== 'protocols') return true
  return (data.protocols ?? []).some(p => !peer.protocols.includes(p))
}

export function skipRecordedProtocolMerges (host: Pick<Libp2p, 'peerStore' | 'addEventListener'>): void {
  const store: PeerStore = host.peerStore
  const records = new Map<string, Peer>()
  const follow = (peer: Peer): void => {
    const id = peer.id.toString()
    records.delete(id)
    records.set(id, peer)
    if (records.size > RECORDS_KEPT) records.delete(records.keys().next().value as string)
  }
  host.addEventListener('peer:update', (evt) => { follow(evt.detail.peer) })
  const merge = store.merge.bind(store)
  const remove = store.delete.bind(store)
  store.merge = async (id: PeerId, data: PeerData, options?: AbortOptions): Promise<Peer> => {
    const peer = records.get(id.toString())
    if (peer !== undefined && !adds(peer, data)) return peer
    return await merge(id, data, options)
  }
  store.delete = async (id: PeerId, options?: AbortOptions): Promise<void> => {
    records.delete(id.toString())
    await remove(id, options)
  }
}
