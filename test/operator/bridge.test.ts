import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Cluster, TestNode, waitFor } from '../harness/index.ts'
import { ApiClient } from '../../node/api/index.ts'
import { Home } from '../../node/home/index.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { joinNetwork } from '../../node/network/index.ts'
import { createHost } from '../../node/host/index.ts'
import { topicPrefix, protocolPrefix, signBridgeGrant, encodeBridgeGrant, type CertificateChain } from '../../membership/index.ts'
import { encodeBridgedMessage } from '../../node/gossip/index.ts'
import { BridgeBook } from '../../node/bridge/index.ts'
import { signEntry, signerOf, sporeProtocols } from '../../spores/index.ts'
import { encodeCanonical, randomSecretKey } from '../../crypto/index.ts'

interface Received { topic: string, from: string, text: string, origin?: { networkId: string, peerId: string, bridge: string } }

// Loops go straight to the daemons' admin API (what the CLI calls) to spare a process per poll.
function api (node: TestNode): ApiClient {
  return ApiClient.forHome(new Home(node.home))
}

async function messages (node: TestNode, topic: string): Promise<Received[]> {
  return await api(node).request('GET', `/gossip/messages?topic=${topic}`)
}

async function publish (node: TestNode, topic: string, text: string): Promise<void> {
  await api(node).request('POST', '/gossip/publish', { topic, message: text })
}

async function peers (node: TestNode): Promise<string[]> {
  return (await api(node).request<Array<{ peerId: string }>>('GET', '/peers')).map(p => p.peerId)
}

/** Publishes until every target holds the message (gossipsub meshes form on heartbeats). */
async function publishUntilSeen (from: TestNode, topic: string, text: string, targets: TestNode[]): Promise<void> {
  await waitFor(async () => {
    await publish(from, topic, text)
    const seen = await Promise.all(targets.map(async t => (await messages(t, topic)).some(m => m.text === text)))
    return seen.every(Boolean)
  }, { timeoutMs: 25_000, intervalMs: 1_000, what: `"${text}" on ${targets.map(t => t.name).join(', ')}` })
}

/** A member of a network with its own libp2p host, so it can publish any bytes it likes. */
async function memberHost (dir: string, invite: string, listen: string[] = []): Promise<{ host: Awaited<ReturnType<typeof createHost>>, secretKey: Uint8Array, networkId: string, chain: CertificateChain }> {
  const home = new Home(dir)
  await joinNetwork(home, invite, { signal: AbortSignal.timeout(20_000) })
  const network = home.loadNetwork()!
  const chain = home.loadChain()!
  const privateKey = home.loadNodeKey()
  const verified = new Set<string>()
  const host = await createHost({
    privateKey,
    networkId: network.networkId,
    listen,
    bootstrap: [],
    membership: { networkId: network.networkId, rootPublicKey: network.rootPublicKey, credentials: () => ({ kind: 'member', chain }), isRevoked: () => false, now: () => Date.now(), onVerified: (p) => { verified.add(p) }, onRejected: () => {} },
    isVerified: (p) => verified.has(p.toString()),
    isRevoked: () => false,
    relayServer: false
  })
  await host.start()
  return { host, secretKey: privateKey.raw.subarray(0, 32), networkId: network.networkId, chain }
}

describe('a bridge between two networks of three nodes (real processes)', () => {
  const clusterA = new Cluster()
  const clusterB = new Cluster()
  let a: TestNode[]
  let b: TestNode[]
  let netA: string
  let netB: string
  let bridgeId: string
  let bridgeKeyInB: string
  const RATE = 10
  const attackerDir = mkdtempSync(join(tmpdir(), 'myc-attacker-'))
  let attacker: Awaited<ReturnType<typeof memberHost>> | undefined

  beforeAll(async () => {
    [a, b] = await Promise.all([clusterA.startNetwork(3), clusterB.startNetwork(3)])
    await waitFor(async () => (await Promise.all([...a, ...b].map(peers))).every(p => p.length === 2), { timeoutMs: 30_000, intervalMs: 300, what: 'two full meshes' })
    netA = (await a[0].status()).networkId
    netB = (await b[0].status()).networkId
    await Promise.all([...a, ...b].map(async n => {
      for (const topic of ['chat', 'secret']) await api(n).request('POST', '/gossip/subscribe', { topic })
    }))
  }, 120_000)
  afterAll(async () => {
    await attacker?.host.stop()
    rmSync(attackerDir, { recursive: true, force: true })
    await Promise.all([clusterA.destroy(), clusterB.destroy()])
  })

  it('a member without a bridge grant cannot post a message as another member or another network\'s', async () => {
    // the attacker is an ordinary member of A (no bridge, no grant)
    const dir = mkdtempSync(join(tmpdir(), 'myc-forger-'))
    const { host, secretKey } = await memberHost(dir, await clusterA.invite(a[0]))
    try {
      const forger = host.peerId.toString()
      const admin = a[0].peerId
      const topic = `${topicPrefix(netA)}/app/chat`
      host.services.pubsub.subscribe(topic)
      // a dial on a busy loopback is now and then reset during the handshake: dial again
      const founderAddr = multiaddr((await a[0].status()).addrs[0])
      await waitFor(async () => { await host.dial(founderAddr); return true }, { timeoutMs: 30_000, intervalMs: 500, what: 'the forger connected to the founder' })
      // a real grant of A's administrator, but for another member's key: it attests nobody else
      const rootSecret = new Home(a[0].home).loadRootKey((await new Home(a[0].home).loadNetwork())!)!
      const othersGrant = encodeBridgeGrant(signBridgeGrant(rootSecret, { bridge: a[2].peerId, origin: netB, issuedAt: Date.now(), ttlMs: 3600_000 }))
      const wrap = (originNetwork: string, text: string, grant?: Uint8Array): Uint8Array => encodeBridgedMessage({ topic: 'chat', originNetwork, originPeer: admin, data: new TextEncoder().encode(text), bridge: forger, grant }, secretKey)
      // forged first, then a plain message of the same member: once that one is seen, the
      // forged ones had their chance to arrive
      await waitFor(async () => {
        await host.services.pubsub.publish(topic, wrap(netA, 'forged: admin says hand over the keys')).catch(() => {})
        await host.services.pubsub.publish(topic, wrap(netB, 'forged via another network')).catch(() => {})
        await host.services.pubsub.publish(topic, wrap(netB, 'forged with a stolen grant', othersGrant)).catch(() => {})
        await host.services.pubsub.publish(topic, new TextEncoder().encode('plain, from the forger')).catch(() => {})
        const seen = await Promise.all([a[1], a[2]].map(async n => (await messages(n, 'chat')).some(m => m.text === 'plain, from the forger' && m.from === forger)))
        return seen.every(Boolean)
      }, { timeoutMs: 25_000, intervalMs: 1_000, what: 'the forger\'s plain message on a[1] and a[2]' })
      for (const n of [a[1], a[2]]) {
        const forged = (await messages(n, 'chat')).filter(m => m.text.startsWith('forged'))
        // whatever it claims, an unattested wrapper is the forger's own message: never the
        // admin's, never another network's
        expect(forged.length).toBeGreaterThan(0)
        for (const m of forged) {
          expect(m.from).toBe(forger)
          expect(m.origin).toBeUndefined()
        }
      }
    } finally {
      await host.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('bridge add joins the other network with a second key; bridge ls shows it', async () => {
    const invite = await clusterB.invite(b[0])
    const added = await a[1].cliJson(['bridge', 'add', '--to', invite, '--topics', 'chat', '--rate', `${RATE}/s`])
    expect(added.networkId).toBe(netB)
    expect(added.topics).toEqual(['chat'])
    expect(added.ratePerS).toBe(RATE)
    expect(added.peerId).not.toBe(a[1].peerId)
    bridgeId = added.id
    bridgeKeyInB = added.peerId
    await waitFor(async () => (await api(a[1]).request<any[]>('GET', '/bridges'))[0]?.peers > 0, { timeoutMs: 15_000, what: 'the bridge to reach network B' })
    const bad = await a[1].cli(['bridge', 'add', '--to', invite, '--topics', 'chat', '--rate', 'fast'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/not a rate/)

    // granted by neither administrator yet: it carries nothing, and says so
    expect(added.granted).toEqual({})
    await waitFor(async () => {
      await publish(a[2], 'chat', 'before any grant')
      return (await api(a[1]).request<any[]>('GET', '/bridges'))[0].out.unattested > 0
    }, { timeoutMs: 20_000, intervalMs: 1_000, what: 'the ungranted bridge to hold a message back' })
    // each administrator grants the bridge's key in its own network; a grant for the wrong
    // key is refused
    const intoB = (await b[0].cli(['network', 'grant-bridge', bridgeKeyInB, '--from', netA])).stdout.trim()
    const intoA = (await a[0].cli(['network', 'grant-bridge', a[1].peerId, '--from', netB])).stdout.trim()
    const wrong = await a[1].cli(['bridge', 'grant', bridgeId, (await a[0].cli(['network', 'grant-bridge', a[2].peerId, '--from', netB])).stdout.trim()])
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/this bridge needs one for/)
    expect((await a[1].cliJson(['bridge', 'grant', bridgeId, intoB])).granted.out).toBeGreaterThan(Date.now())
    const granted = await a[1].cliJson(['bridge', 'grant', bridgeId, intoA])
    expect(granted.granted.in).toBeGreaterThan(Date.now())
    expect(granted.granted.out).toBeGreaterThan(Date.now())
  })

  it('an allow-listed topic and service records of that name cross both ways, labelled with their origin network', async () => {
    await publishUntilSeen(a[2], 'chat', 'hello B, from A', [b[0], b[1], b[2]])
    const got = (await messages(b[2], 'chat')).find(m => m.text === 'hello B, from A')!
    expect(got.origin).toEqual({ networkId: netA, peerId: a[2].peerId, bridge: bridgeKeyInB })
    // shown qualified by its network, never as a member of B
    expect(got.from).toBe(`${netA}/${a[2].peerId}`)

    await publishUntilSeen(b[1], 'chat', 'hello A, from B', [a[0], a[2]])
    const back = (await messages(a[0], 'chat')).find(m => m.text === 'hello A, from B')!
    expect(back.origin).toEqual({ networkId: netB, peerId: b[1].peerId, bridge: a[1].peerId })
    // a service record of an allow-listed name crosses as the bridge's own record, labelled
    await api(a[2]).request('POST', '/spores/services', { name: 'chat', endpoints: ['/ip4/127.0.0.1/tcp/5222'] })
    const services = async (n: TestNode): Promise<any[]> => (await api(n).request<any[]>('GET', '/spores?type=service')).filter(e => e.value.name === 'chat')
    await waitFor(async () => (await Promise.all(b.map(services))).every(list => list.some(e => e.origin === bridgeKeyInB && e.value.protocol === `bridged from ${netA}/${a[2].peerId}`)), { timeoutMs: 20_000, what: 'the service record of A on every node of B' })
    expect((await services(b[0])).find(e => e.origin === bridgeKeyInB).value.endpoints).toEqual(['/ip4/127.0.0.1/tcp/5222'])
    await api(b[1]).request('POST', '/spores/services', { name: 'chat', endpoints: ['/ip4/127.0.0.1/tcp/5223'] })
    await waitFor(async () => (await Promise.all([a[0], a[2]].map(services))).every(list => list.some(e => e.origin === a[1].peerId && e.value.protocol === `bridged from ${netB}/${b[1].peerId}`)), { timeoutMs: 20_000, what: 'the service record of B on the nodes of A' })

    // messages of a node's own network carry no origin label
    expect((await messages(a[0], 'chat')).find(m => m.text === 'hello B, from A')?.origin).toBeUndefined()
  })

  it('nothing else crosses: not a listed topic, not another spore entry, not a DHT lookup, not a connection', async () => {
    await publishUntilSeen(a[2], 'secret', 'A only', [a[0], a[1]])
    await publishUntilSeen(b[2], 'secret', 'B only', [b[0], b[1]])
    // later messages on the listed topic cross by the same bridge node: a message of the other
    // topic sent before them would have crossed by now if the bridge carried it
    await publishUntilSeen(a[2], 'chat', 'after A only', [b[0], b[1], b[2]])
    await publishUntilSeen(b[2], 'chat', 'after B only', [a[0], a[2]])
    // B's members are found in B's DHT, never in A's, not even the bridge's key in B
    const [inB, ...inA] = await Promise.all([
      b[0].cliJson(['dht', 'find-peer', b[2].peerId]),
      a[0].cliJson(['dht', 'find-peer', b[2].peerId]),
      a[2].cliJson(['dht', 'find-peer', bridgeKeyInB])
    ])
    expect(inB.found).toBe(true)
    for (const lookup of inA) expect(lookup.found).toBe(false)

    // spore entries stay in their network: a service record of A reaches A's nodes only, and
    // no node of B holds any entry signed by a node of A (nor the other way round)
    await api(a[2]).request('POST', '/spores/services', { name: 'printer', endpoints: ['/ip4/127.0.0.1/tcp/631'] })
    await waitFor(async () => (await api(a[0]).request<any[]>('GET', '/spores?type=service')).some(e => e.origin === a[2].peerId), { timeoutMs: 20_000, what: 'the service record on another node of A' })
    for (const n of b) {
      const entries = await api(n).request<any[]>('GET', '/spores')
      expect(entries.filter(e => a.some(x => x.peerId === e.origin))).toEqual([])
      expect(entries.filter(e => e.type === 'service' && e.value.name === 'printer')).toEqual([])
    }
    for (const n of a) expect((await api(n).request<any[]>('GET', '/spores')).filter(e => b.some(x => x.peerId === e.origin) || e.origin === bridgeKeyInB)).toEqual([])

    for (const n of b) expect((await messages(n, 'secret')).map(m => m.text)).not.toContain('A only')
    for (const n of a) expect((await messages(n, 'secret')).map(m => m.text)).not.toContain('B only')
    for (const n of a) for (const p of await peers(n)) expect(b.map(x => x.peerId)).not.toContain(p)
    for (const n of b) for (const p of await peers(n)) expect(a.map(x => x.peerId)).not.toContain(p)
  })

  it('holds its rate limit under a flood', async () => {
    const before = (await api(a[1]).request<any[]>('GET', '/bridges'))[0]
    const client = api(a[2])
    const FLOOD = 200
    const started = performance.now()
    for (let i = 0; i < FLOOD; i += 20) {
      await Promise.all(Array.from({ length: 20 }, async (_, j) => await client.request('POST', '/gossip/publish', { topic: 'chat', message: `flood ${i + j}` })))
    }
    // a message sent after the flood on the same way (A's gossip to the bridge node, the bridge,
    // B's gossip) that has reached the bridge node and B: the flood before it has been counted
    // by the bridge, and whatever the bridge let through has arrived in B
    await publishUntilSeen(a[2], 'chat', 'after the flood', [a[1], b[0]])
    const after = (await api(a[1]).request<any[]>('GET', '/bridges'))[0]
    const elapsedS = (performance.now() - started) / 1000
    const forwarded = after.out.forwarded - before.out.forwarded
    const dropped = after.out.dropped - before.out.dropped
    // a full bucket (one second's worth) plus the refill while the flood lasted
    expect(forwarded).toBeLessThanOrEqual(RATE + Math.ceil(RATE * elapsedS))
    expect(forwarded).toBeGreaterThan(0)
    expect(dropped).toBeGreaterThanOrEqual(FLOOD - forwarded - 5)
    const onB = (await messages(b[0], 'chat')).filter(m => m.text.startsWith('flood ')).length
    expect(onB).toBeLessThanOrEqual(forwarded)
    expect(onB).toBeLessThan(FLOOD)
    // the flood stays whole inside its own network
    await waitFor(async () => (await messages(a[0], 'chat')).filter(m => m.text.startsWith('flood ')).length >= FLOOD * 0.9, { timeoutMs: 10_000, what: 'the flood inside network A' })
  })

  it('comes back after the bridge node restarts', async () => {
    // A member of B, the attacker of the next test, listening: the bridge dials every member
    // of B it learns of; here it learns this one's address from its bootstrap list at start
    attacker = await memberHost(attackerDir, await clusterB.invite(b[0]), ['/ip4/127.0.0.1/tcp/0'])
    const bridgeHome = new BridgeBook(new Home(a[1].home)).bridgeHome(bridgeId)
    bridgeHome.saveBootstrap([...bridgeHome.loadBootstrap(), attacker.host.getMultiaddrs()[0].toString()])
    expect(await a[1].stop()).toBe(0)
    await a[1].start()
    await waitFor(async () => (await api(a[1]).request<any[]>('GET', '/bridges'))[0]?.peers > 0, { timeoutMs: 20_000, what: 'the bridge to rejoin network B' })
    await api(a[1]).request('POST', '/gossip/subscribe', { topic: 'chat' })
    await publishUntilSeen(b[0], 'chat', 'after restart, from B', [a[0], a[2]])
  })

  it('carries only service records the spores would merge: no forged origin, no bad signature, no stranger', async () => {
    const { host, secretKey } = attacker!
    const forger = host.peerId.toString()
    const latent = sporeProtocols({ protocolPrefix: protocolPrefix(netB), topicPrefix: topicPrefix(netB) }).gossip
    host.services.pubsub.subscribe(latent)
    await waitFor(async () => host.getPeers().some(p => p.toString() === bridgeKeyInB), { timeoutMs: 20_000, intervalMs: 300, what: 'the bridge to dial the attacker' })
    const now = Date.now()
    const service = (origin: string, port: number): Record<string, unknown> => ({ type: 'service', key: `${origin}/chat`, value: { name: 'chat', endpoints: [`/ip4/10.6.6.6/tcp/${port}`] }, origin, seq: now, issuedAt: now })
    // a record of B's founder that it never signed (zero signature), one signed by a key that
    // is no member of B, and a valid record of the attacker itself
    const zeroSig = encodeCanonical([encodeCanonical(service(b[0].peerId, 6001)), new Uint8Array(64)])
    const stranger = signerOf(randomSecretKey())
    const strangerBytes = signEntry(stranger, { type: 'service', key: `${stranger.peerId}/chat`, value: { name: 'chat', endpoints: ['/ip4/10.6.6.6/tcp/6002'] }, seq: now, issuedAt: now }).bytes
    const valid = signEntry(signerOf(secretKey), { type: 'service', key: `${forger}/chat`, value: { name: 'chat', endpoints: ['/ip4/10.6.6.6/tcp/6003'] }, seq: now, issuedAt: now })
    const servicesOf = async (n: TestNode): Promise<any[]> => (await api(n).request<any[]>('GET', '/spores?type=service')).filter(e => e.value.name === 'chat')
    await waitFor(async () => {
      for (const bytes of [zeroSig, strangerBytes, valid.bytes]) await host.services.pubsub.publish(latent, bytes).catch(() => {})
      return (await Promise.all([a[0], a[2]].map(servicesOf))).every(list => list.some(e => e.value.protocol === `bridged from ${netB}/${forger}`))
    }, { timeoutMs: 25_000, intervalMs: 1_000, what: 'the attacker\'s valid record on the nodes of A' })
    // the forged ones were sent before the valid one, each time: they had their chance
    for (const n of a) {
      const endpoints = (await servicesOf(n)).flatMap(e => e.value.endpoints as string[])
      expect(endpoints).not.toContain('/ip4/10.6.6.6/tcp/6001')
      expect(endpoints).not.toContain('/ip4/10.6.6.6/tcp/6002')
    }
    expect((await api(a[1]).request<any[]>('GET', '/bridges'))[0].in.refused).toBeGreaterThanOrEqual(2)
  })

  it('after bridge rm nothing crosses, and a node of B still cannot connect to a node of A', async () => {
    expect((await Promise.all(b.map(peers))).some(p => p.includes(bridgeKeyInB))).toBe(true)
    const removed = await a[1].cliJson(['bridge', 'rm', bridgeId])
    expect(removed.removed).toBe(bridgeId)
    expect(await a[1].cliJson(['bridge', 'ls'])).toEqual([])
    // the bridge's key in B was a peer of B's nodes; with the bridge gone, no node of B is
    // connected to it any more, so nothing has a way across
    await waitFor(async () => (await Promise.all(b.map(peers))).every(p => !p.includes(bridgeKeyInB)), { timeoutMs: 15_000, intervalMs: 300, what: 'every node of B to lose the bridge' })
    // A's message reaches the bridge node a[1]; two later messages of B then reach every node of
    // B, and a[1]'s own later message reaches the other nodes of A (the way a message from B
    // would have entered A): anything still carried across would have arrived before them
    await publishUntilSeen(a[2], 'chat', 'after rm, from A', [a[0], a[1]])
    await publishUntilSeen(b[2], 'chat', 'after rm, from B', [b[0], b[1]])
    await publishUntilSeen(b[0], 'chat', 'after rm, later in B', [b[1], b[2]])
    await publishUntilSeen(a[1], 'chat', 'after rm, later in A', [a[0], a[2]])
    for (const n of b) expect((await messages(n, 'chat')).map(m => m.text)).not.toContain('after rm, from A')
    for (const n of a) expect((await messages(n, 'chat')).map(m => m.text)).not.toContain('after rm, from B')

    const target = (await a[0].status()).addrs[0]
    await b[2].stop()
    await b[2].start(['--bootstrap', target])
    await waitFor(async () => (await api(a[0]).request<any[]>('GET', '/rejected')).some(r => r.peerId === b[2].peerId), { timeoutMs: 15_000, what: 'A to refuse the node of B' })
    // both ends end the handshake once (verified or refused) before a peer can be listed
    await waitFor(async () => (await api(b[2]).request<any[]>('GET', '/rejected')).some(r => r.peerId === a[0].peerId), { timeoutMs: 15_000, what: 'the node of B to record its side of the refusal' })
    expect(await peers(a[0])).not.toContain(b[2].peerId)
    expect(await peers(b[2])).not.toContain(a[0].peerId)
  })
})
