// Round messages over direct streams (node/consensus/direct-links.ts), on real libp2p nodes:
// what members send reaches the connected committee once, a member without the protocol or
// without a link still gets it by gossip, and a stranger's or an oversized frame changes
// nothing and closes only its own stream.
import { afterEach, describe, expect, it } from 'vitest'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { lpStream } from '@libp2p/utils'
import type { PeerId } from '@libp2p/interface'
import { gossipsubTransport, consensusTopics, MAX_MESSAGE_BYTES, type GossipsubLike } from '../../consensus/index.ts'
import { directLinks, type DirectLinks } from '../../node/consensus/direct-links.ts'

const PROTOCOL = '/mycelium/test/bft/direct/1.0.0'
const TOPICS = consensusTopics('mycelium/test')

interface TestNode {
  libp2p: Libp2p<{ pubsub: any, identify: any }>
  id: string
  links?: DirectLinks
  received: Uint8Array[]
  certified: Uint8Array[]
}

const nodes: TestNode[] = []

async function node (options: { direct?: boolean, accepts?: (peer: string) => boolean, targets?: () => string[] } = {}): Promise<TestNode> {
  const libp2p = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false } as any) }
  }) as TestNode['libp2p']
  const n: TestNode = { libp2p, id: libp2p.peerId.toString(), received: [], certified: [] }
  const gossip = gossipsubTransport(libp2p.services.pubsub as GossipsubLike)
  const transport = options.direct === false
    ? gossip
    : (n.links = directLinks({ host: libp2p, gossip, protocol: PROTOCOL, directTopic: TOPICS.rounds, accepts: options.accepts ?? (() => true), targets: options.targets }))
  await n.links?.start()
  transport.subscribe(TOPICS.rounds, (data) => { n.received.push(data) })
  transport.subscribe(TOPICS.certified, (data) => { n.certified.push(data) })
  nodes.push(n)
  return n
}

async function until (check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

async function link (a: TestNode, b: TestNode): Promise<void> {
  await a.libp2p.dial(b.libp2p.getMultiaddrs())
}

/** Waits until gossipsub on `n` counts `count` subscribers of the rounds topic. */
async function gossipReady (n: TestNode, count: number): Promise<void> {
  await until(() => ((n.libp2p.services.pubsub as { getSubscribers: (t: string) => PeerId[] }).getSubscribers(TOPICS.rounds)).length >= count)
}

function message (size: number, fill: number): Uint8Array {
  return new Uint8Array(size).fill(fill)
}

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await n.links?.stop()
    await n.libp2p.stop()
  }
})

describe('direct consensus links', () => {
  it('sends round messages once to each connected member, without the gossip copy', async () => {
    const [a, b, c] = [await node(), await node(), await node()]
    await link(a, b)
    await link(a, c)
    await link(b, c)
    await gossipReady(a, 2)
    const sent = message(70_000, 1)
    await a.links?.publish(TOPICS.rounds, sent)
    await until(() => b.received.length === 1 && c.received.length === 1)
    expect(b.received[0]).toEqual(sent)
    expect(c.received[0]).toEqual(sent)
    // Every target had a direct link: gossip carried nothing, so nothing arrives twice.
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(b.received.length).toBe(1)
    expect(a.links?.stats().sentDirect).toBe(2)
    expect(b.links?.stats().receivedDirect).toBe(1)
  })

  it('reaches a target without a direct link through gossip, once', async () => {
    const [b, c] = [await node(), await node()]
    // c is a target of a2's, reachable only through b's gossip mesh.
    const targets = [b.id, c.id]
    const a2 = await node({ targets: () => targets })
    await link(a2, b)
    await link(b, c)
    await gossipReady(a2, 1)
    await gossipReady(b, 2)
    await a2.links?.publish(TOPICS.rounds, message(100, 2))
    await until(() => b.received.length === 1 && c.received.length === 1)
    await new Promise(resolve => setTimeout(resolve, 300))
    // b took it directly and by gossip: handed on once.
    expect(b.received.length).toBe(1)
    expect(b.links?.stats().duplicates).toBeGreaterThanOrEqual(1)
    expect(a2.links?.stats().sentDirect).toBe(1)
  })

  it('falls back to gossip for a member that does not speak the direct protocol', async () => {
    const a = await node()
    const old = await node({ direct: false })
    await link(a, old)
    await gossipReady(a, 1)
    await a.links?.publish(TOPICS.rounds, message(100, 3))
    await until(() => old.received.length === 1)
    // Later messages go by gossip at once, without a new failed stream.
    await a.links?.publish(TOPICS.rounds, message(100, 4))
    await until(() => old.received.length === 2)
    expect(old.received.map(m => m[0])).toEqual([3, 4])
  })

  it('drops a member that stops reading once 4 MiB wait for it, and gossip carries what it held', async () => {
    const a = await node()
    // A member that takes the direct stream and never reads from it (stalled, or Byzantine).
    const stalled = await node({ direct: false })
    const held: unknown[] = []
    await stalled.libp2p.handle(PROTOCOL, (stream) => { held.push(stream) })
    await link(a, stalled)
    await gossipReady(a, 1)
    // 48 messages of 128 KiB (6 MiB): the stalled peer's flow-control window and the sockets
    // take a few hundred KiB, the rest waits at the sender until the guard drops the link.
    const count = 48
    for (let i = 0; i < count; i++) await a.links?.publish(TOPICS.rounds, message(128 * 1024, i))
    // Every message reaches the stalled member all the same, by gossip: what the dropped link
    // held is published there, and later messages go there at once. (A frame the stalled stream
    // had already taken before the drop would be lost to that member: a round message it then
    // misses costs a round, as any lost message does; here none was: all were written at
    // once when the link opened, and the guard tripped before the first was taken.)
    await until(() => new Set(stalled.received.map(m => m[0])).size === count, 30_000)
    // once each: what the dropped link held went to gossip once, not again as its writes failed
    await new Promise(resolve => setTimeout(resolve, 500))
    expect(stalled.received.length).toBe(count)
    expect(held.length).toBeGreaterThanOrEqual(1)
    expect(a.links?.stats().links).toBe(0)
    // The sender still works and sends no more direct frames to that peer for a while.
    const sent = a.links!.stats().sentDirect
    await a.links?.publish(TOPICS.rounds, message(100, 200))
    await until(() => stalled.received.length === count + 1)
    expect(a.links!.stats().sentDirect).toBe(sent)
  })

  it('keeps certificates and evidence on gossip', async () => {
    const [a, b] = [await node(), await node()]
    await link(a, b)
    await until(() => ((a.libp2p.services.pubsub as { getSubscribers: (t: string) => PeerId[] }).getSubscribers(TOPICS.certified)).length >= 1)
    await a.links?.publish(TOPICS.certified, message(100, 5))
    await until(() => b.certified.length === 1)
    expect(a.links?.stats().sentDirect).toBe(0)
  })

  it('refuses a stranger\'s stream and an oversized frame without harm to the node', async () => {
    const stranger = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    let strangerId = ''
    const member = await node({ accepts: (peer) => peer !== strangerId })
    strangerId = stranger.peerId.toString()
    try {
      const s1 = await stranger.dialProtocol(member.libp2p.getMultiaddrs(), PROTOCOL)
      await lpStream(s1).write(message(100, 6)).catch(() => {})
      await until(() => s1.status !== 'open')

      // A verified member (accepted) that sends a frame over the limit: its stream closes.
      const friend = await node()
      const s2 = await friend.libp2p.dialProtocol(member.libp2p.getMultiaddrs(), PROTOCOL)
      await lpStream(s2).write(message(MAX_MESSAGE_BYTES + 1, 7)).catch(() => {})
      await until(() => s2.status !== 'open')
      expect(member.received.length).toBe(0)

      // The member still works: a good message from the friend gets through.
      await gossipReady(friend, 1)
      await friend.links?.publish(TOPICS.rounds, message(100, 8))
      await until(() => member.received.length === 1)
      expect(member.received[0][0]).toBe(8)
    } finally {
      await stranger.stop()
    }
  })
})
