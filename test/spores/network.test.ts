import { describe, it, expect, afterEach } from 'vitest'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import { encodeCanonical } from '../../crypto/index.ts'
import { Spores, signEntry, sporeProtocols, type SporesNetwork, type Signer } from '../../spores/index.ts'
import { identity, networkRoot, tempDir, nodeValue, healthValue, entry, NETWORK, type Root } from './fixtures.ts'
import { p2pIdentity, startNode, waitFor, type TestNode } from './p2p.ts'

const names = { protocolPrefix: `/mycelium/${NETWORK}`, topicPrefix: `mycelium/${NETWORK}` }

interface Member {
  node: TestNode
  spores: Spores
  net: SporesNetwork
  signer: Signer
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
})

async function member (root: Root, options: { summary?: boolean } = {}): Promise<Member> {
  const dir = await tempDir('spores-net-')
  const { privateKey, signer } = await p2pIdentity()
  const node = await startNode(privateKey)
  const spores = await Spores.open({ database: join(dir.path, 'db'), network: NETWORK, rootPublicKey: root.publicKey, signer })
  const net = await spores.attach({
    host: node,
    pubsub: node.services.pubsub,
    names,
    syncIntervalMs: 0,
    intermittentAfter: 4,
    ...(options.summary === true ? { summary: () => ({ node: nodeValue(7), health: healthValue(), uptime: { since: 1, uptimeS: 60 } }), publishIntervalMs: 3_600_000 } : {})
  })
  cleanups.push(async () => { try { await spores.close(); await node.stop() } finally { await dir.remove() } })
  return { node, spores, net, signer }
}

async function connectAll (members: Member[]): Promise<void> {
  // a ring plus chords: not everyone is directly connected, so gossip must forward
  for (let i = 0; i < members.length; i++) {
    await members[i].node.dial(members[(i + 1) % members.length].node.getMultiaddrs()[0])
  }
  const topic = members[0].net.gossip.topic
  await waitFor(() => members.every(m => m.node.services.pubsub.getSubscribers(topic).length >= Math.min(2, members.length - 1)), 10_000, 'gossip mesh subscriptions')
}

describe('latent gossip between real libp2p nodes', () => {
  it('converges five nodes to the same latent spore and drops forged, tampered and replayed gossip', async () => {
    const root = networkRoot()
    const members = await Promise.all(Array.from({ length: 5 }, async () => await member(root)))
    await connectAll(members)

    const author = members[0]
    const published = entry(author.signer, 'service', { name: 'mqtt', endpoints: ['/ip4/127.0.0.1/tcp/1883'] }, { key: `${author.signer.peerId}/mqtt` })
    await author.spores.merge('latent', [published])
    await author.net.gossip.publish(published)
    await waitFor(async () => (await Promise.all(members.map(async m => (await m.spores.ls({ type: 'service' })).length))).every(n => n === 1), 15_000, 'the entry on every node')
    const views = await Promise.all(members.map(async m => await m.spores.ls()))
    for (const v of views) expect(v).toEqual(views[0])

    // a Byzantine member publishes straight onto the topic
    const byzantine = members[1]
    const victim = identity()
    const tampered = new Uint8Array(published.bytes)
    tampered[tampered.length - 70] ^= 1
    const forged = signEntry(byzantine.signer, { type: 'node', key: victim.peerId, value: nodeValue(), seq: 1, issuedAt: Date.now() } as any)
    const topic = byzantine.net.gossip.topic
    for (const data of [tampered, forged.bytes, published.bytes, new Uint8Array(100 * 1024)]) {
      await byzantine.node.services.pubsub.publish(topic, data).catch(() => {})
    }
    // rejected and ignored messages are not forwarded: only the Byzantine node's direct
    // neighbours see them, and each of them counts every reason
    const neighbour = members[2]
    const reasons = ['bad-signature', 'unauthorized-origin', 'replay', 'oversized'] as const
    await waitFor(() => reasons.every(r => neighbour.spores.rejections.total(r) > 0), 10_000, 'each rejection reason counted')
    for (const m of members.filter(m => m !== byzantine)) expect(await m.spores.ls()).toEqual(views[0])
    expect(members[3].spores.rejections.total() + members[4].spores.rejections.total()).toBe(0)
  })

  it('publishes a node\'s own node, health and uptime entries to the others', async () => {
    const root = networkRoot()
    const a = await member(root, { summary: true })
    const b = await member(root)
    await connectAll([a, b])
    await a.net.publisher.publishNow()
    await waitFor(async () => (await b.spores.ls()).length === 3, 10_000, 'own entries on the peer')
    const types = (await b.spores.ls()).map(e => `${e.type}:${e.key === a.signer.peerId}`).sort()
    expect(types).toEqual(['health:true', 'node:true', 'uptime:true'])
    // a node that stops publishing drops out of the spore after a window
    const own = (await b.spores.ls({ type: 'node' }))[0]
    expect(own.expiresAt).toBe(own.issuedAt + 24 * 3600_000)

    // a flapping peer becomes one connection record, tagged intermittent, with counts
    const flapper = identity().peerId
    for (let i = 0; i < 10; i++) await a.net.publisher.recordConnection(flapper, i % 2 === 0 ? 'connect' : 'disconnect')
    await waitFor(async () => (await b.spores.ls({ type: 'connection' }))[0]?.value !== undefined && ((await b.spores.ls({ type: 'connection' }))[0].value as any).intermittent === true, 10_000, 'the condensed connection record')
    const records = await b.spores.ls({ type: 'connection' })
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ key: `${a.signer.peerId}/${flapper}`, origin: a.signer.peerId, value: { remote: flapper, intermittent: true, connects: 5, disconnects: 5, state: 'disconnected' } })
  })
})

describe('anti-entropy sync', () => {
  it('catches up a node that was apart as soon as it reconnects', async () => {
    const root = networkRoot()
    const [a, b, c] = await Promise.all([0, 1, 2].map(async () => await member(root)))
    await connectAll([a, b, c])
    await c.node.hangUp(a.node.peerId)
    await c.node.hangUp(b.node.peerId)
    await waitFor(() => c.node.getPeers().length === 0, 5_000, 'c apart')
    const news = Array.from({ length: 5 }, (_, i) => entry(a.signer, 'service', { name: `n${i}`, endpoints: [] }, { key: `${a.signer.peerId}/n${i}` }))
    await a.spores.merge('latent', news)
    for (const e of news) await a.net.gossip.publish(e)
    await waitFor(async () => (await b.spores.ls({ type: 'service' })).length === 5, 10_000, 'gossip to b')
    expect(await c.spores.ls({ type: 'service' })).toEqual([])

    await c.node.dial(b.node.getMultiaddrs()[0])
    await c.net.peerConnected(b.node.peerId)
    expect(await c.spores.ls({ type: 'service' })).toEqual(await b.spores.ls({ type: 'service' }))
    expect((await c.spores.ls({ type: 'connection' })).map(e => e.key)).toEqual([`${c.signer.peerId}/${b.signer.peerId}`])
    expect(c.spores.stats().sync?.sessions).toBe(1)
  })

  it('one session, started by the side that dialled, brings each side what the other wrote while apart', async () => {
    const root = networkRoot()
    const b = await member(root)
    const c = await member(root)
    const fromB = entry(b.signer, 'service', { name: 'b-only', endpoints: [] }, { key: `${b.signer.peerId}/b-only` })
    const fromC = entry(c.signer, 'service', { name: 'c-only', endpoints: [] }, { key: `${c.signer.peerId}/c-only` })
    await b.spores.merge('latent', [fromB])
    await c.spores.merge('latent', [fromC])
    await c.node.dial(b.node.getMultiaddrs()[0])
    // what the daemon does on both sides of the new link: the dialled side starts no session
    await b.net.peerConnected(c.node.peerId, undefined, true, false)
    await c.net.peerConnected(b.node.peerId)
    expect(b.spores.stats().sync?.sessions).toBe(0)
    expect(c.spores.stats().sync?.sessions).toBe(1)
    const services = async (m: Member): Promise<string[]> => (await m.spores.ls({ type: 'service' })).map(e => e.key).sort()
    await waitFor(async () => (await services(b)).length === 2, 5_000, 'c\'s entry on b')
    expect(await services(b)).toEqual([fromB.key, fromC.key].sort())
    expect(await services(c)).toEqual([fromB.key, fromC.key].sort())
  })

  it('reconciles two nodes that were apart with traffic proportional to their difference', async () => {
    const root = networkRoot()
    const a = await member(root)
    const b = await member(root)
    const now = Date.now()
    const authors = Array.from({ length: 40 }, () => identity())
    const common = Array.from({ length: 2000 }, (_, i) => entry(authors[i % 40], 'service', { name: `s${i}`, endpoints: ['/ip4/127.0.0.1/tcp/8080'], protocol: '/http/1.1 '.repeat(8) }, { key: `${authors[i % 40].peerId}/s${i}`, issuedAt: now }))
    const onlyA = Array.from({ length: 20 }, (_, i) => entry(authors[i], 'service', { name: `a${i}`, endpoints: [] }, { key: `${authors[i].peerId}/a${i}`, issuedAt: now }))
    const onlyB = Array.from({ length: 15 }, (_, i) => entry(authors[i], 'service', { name: `b${i}`, endpoints: [] }, { key: `${authors[i].peerId}/b${i}`, issuedAt: now }))
    const updated = entry(authors[0], 'service', { name: 's0', endpoints: ['/ip4/127.0.0.1/tcp/9090'] }, { key: `${authors[0].peerId}/s0`, seq: 2, issuedAt: now })
    await a.spores.merge('latent', [...common, ...onlyA])
    await b.spores.merge('latent', [...common, ...onlyB])
    await b.spores.merge('latent', [updated])

    await a.node.dial(b.node.getMultiaddrs()[0])
    const result = await a.net.sync.syncWith(b.node.peerId)

    const la = await a.spores.ls()
    expect(la).toHaveLength(2035)
    expect(await b.spores.ls()).toEqual(la)
    expect(la.find(e => e.key === `${authors[0].peerId}/s0`)?.seq).toBe(2)
    expect(result.pulled).toBe(16)
    // the 20 entries B lacks, and A's older version of s0, which B keeps out as a replay
    expect(result.pushed).toBe(21)
    const databaseBytes = [...common, ...onlyA].reduce((n, e) => n + e.bytes.length, 0)
    const traffic = result.bytesSent + result.bytesReceived
    const differenceBytes = [...onlyA, ...onlyB, updated].reduce((n, e) => n + e.bytes.length, 0)
    expect(traffic).toBeLessThan(databaseBytes / 10)
    expect(traffic).toBeGreaterThan(differenceBytes)
    expect(a.spores.stats().sync?.bytesSent).toBe(result.bytesSent)

    // a second round finds nothing to do and costs one small exchange
    const again = await a.net.sync.syncWith(b.node.peerId)
    expect(again.pulled + again.pushed).toBe(0)
    expect(again.bytesSent + again.bytesReceived).toBeLessThan(200)
  })

  it('bounds what a hostile sync peer can send and changes nothing when it misbehaves', async () => {
    const root = networkRoot()
    const honest = await member(root)
    await honest.spores.merge('latent', [entry(identity(), 'node', nodeValue())])
    const before = await honest.spores.ls()
    const { privateKey } = await p2pIdentity()
    const hostile = await startNode(privateKey)
    cleanups.push(async () => { await hostile.stop() })
    const behaviours: Array<[(lp: ReturnType<typeof lpStream>) => Promise<void>, string]> = [
      [async (lp) => { await lp.write(new Uint8Array(5 * 1024 * 1024)) }, 'InvalidDataLengthError'], // larger than any sync message may be
      [async (lp) => { await lp.read(); await lp.write(encodeCanonical({ t: 'diff', parts: [null, null, null] })) }, 'SporeProtocolError'], // answers ranges it was not asked
      [async (lp) => { await lp.read(); await lp.write(encodeCanonical({ t: 'diff', parts: [['s', [[0, 'b'], [0, 'a']], new Uint8Array(48), [1, 1, 1]]] })) }, 'SporeProtocolError'], // bounds out of order
      [async (lp) => { await lp.read(); await new Promise(resolve => setTimeout(resolve, 3000)) }, 'TimeoutError'] // never answers
    ]
    let behaviour = behaviours[0][0]
    await hostile.handle(sporeProtocols(names).sync, (stream) => {
      void behaviour(lpStream(stream)).catch(() => {})
    })
    await honest.node.dial(hostile.getMultiaddrs()[0])
    for (const [b, expected] of behaviours) {
      behaviour = b
      const err = await honest.net.sync.syncWith(hostile.peerId, AbortSignal.timeout(1000)).then(() => undefined, (e: Error) => e)
      expect(err?.name).toBe(expected)
    }
    expect(await honest.spores.ls()).toEqual(before)
    expect(honest.spores.stats().sync?.sessions).toBe(behaviours.length)
  })
})
