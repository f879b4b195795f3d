// libp2p writes each stream's protocol into the remote peer's record; a member skips the write
// when the record lists the protocol already. What is checked: the record still lists every
// protocol a stream used, repeated streams rewrite nothing, and a record whose protocols were
// replaced since is written again.
import { describe, it, expect, afterEach } from 'vitest'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { MemoryDatastore } from 'datastore-core'
import type { Key } from 'interface-datastore'
import { skipRecordedProtocolMerges } from '../../node/host/peer-store-protocols.ts'

const PROTOCOL = '/mycelium-test/echo/1.0.0'

/** The peer store's datastore, counting the records written. */
class CountingDatastore extends MemoryDatastore {
  writes = 0
  put (key: Key, value: Uint8Array): Key | Promise<Key> {
    this.writes++
    return super.put(key, value)
  }
}

const nodes: Libp2p[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

async function node (datastore = new CountingDatastore()): Promise<{ host: Libp2p, datastore: CountingDatastore }> {
  const host = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    datastore
  })
  skipRecordedProtocolMerges(host)
  nodes.push(host)
  await host.handle(PROTOCOL, async (stream) => { await stream.close() })
  return { host, datastore }
}

async function openAndClose (from: Libp2p, to: Libp2p): Promise<void> {
  const stream = await from.dialProtocol(to.getMultiaddrs()[0], PROTOCOL)
  await stream.close()
}

describe('peer-store writes of stream protocols', () => {
  it('the first stream of a protocol is recorded; the next ones rewrite nothing', async () => {
    const a = await node()
    const b = await node()
    await openAndClose(a.host, b.host)
    const before = { a: a.datastore.writes, b: b.datastore.writes }
    expect((await b.host.peerStore.get(a.host.peerId)).protocols).toContain(PROTOCOL)
    expect((await a.host.peerStore.get(b.host.peerId)).protocols).toContain(PROTOCOL)
    for (let i = 0; i < 5; i++) await openAndClose(a.host, b.host)
    // both sides: the dialler's outbound streams and the listener's inbound ones
    expect(a.datastore.writes).toBe(before.a)
    expect(b.datastore.writes).toBe(before.b)
    expect((await b.host.peerStore.get(a.host.peerId)).protocols).toContain(PROTOCOL)
  })

  it('a record whose protocols were replaced is written again by the next stream', async () => {
    const a = await node()
    const b = await node()
    await openAndClose(a.host, b.host)
    // what identify does when the peer tells its protocols: the list is replaced
    await b.host.peerStore.patch(a.host.peerId, { protocols: ['/mycelium-test/other/1.0.0'] })
    expect((await b.host.peerStore.get(a.host.peerId)).protocols).not.toContain(PROTOCOL)
    const before = b.datastore.writes
    await openAndClose(a.host, b.host)
    expect(b.datastore.writes).toBeGreaterThan(before)
    expect((await b.host.peerStore.get(a.host.peerId)).protocols).toContain(PROTOCOL)
  })

  it('a merge of anything besides known protocols, and after a delete, goes to the store', async () => {
    const a = await node()
    const b = await node()
    await openAndClose(a.host, b.host)
    await b.host.peerStore.merge(a.host.peerId, { protocols: [PROTOCOL], tags: { kept: { value: 7 } } })
    expect((await b.host.peerStore.get(a.host.peerId)).tags.get('kept')?.value).toBe(7)
    await b.host.peerStore.delete(a.host.peerId)
    await b.host.peerStore.merge(a.host.peerId, { protocols: [PROTOCOL] })
    expect((await b.host.peerStore.get(a.host.peerId)).protocols).toEqual([PROTOCOL])
  })
})
