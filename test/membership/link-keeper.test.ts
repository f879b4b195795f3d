// The tiered mesh on real libp2p hosts over loopback (in one process): fourteen members that
// first all meet one founder end with the links their roles call for, gossip reaches them all, a role change
// re-shapes them, a link dialled on demand lives while it carries a feature's stream, and
// kept links carry the peer-store tags that make libp2p keep them.
import { describe, it, expect, afterEach } from 'vitest'
import { createServer, type AddressInfo } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { getPublicKey, randomSecretKey } from '../../crypto/index.ts'
import {
  MemberHost, issueCertificate, networkIdOf, quietLog, SCLEROTIA_PER_RHIZOMORPH, LINK_KEEP_ALIVE_TAG, LINK_TAG,
  type CertificateChain
} from '../../membership/index.ts'
import { createHost, type MyceliumHost } from '../../node/host/index.ts'
import { waitFor } from '../harness/index.ts'

interface Net { rootSecret: Uint8Array, rootPublicKey: Uint8Array, networkId: string }
interface Member { id: string, members: MemberHost, host: MyceliumHost }

const running: MyceliumHost[] = []
const hosts: MemberHost[] = []
afterEach(async () => {
  await Promise.all(hosts.splice(0).map(async m => { await m.detach() }))
  await Promise.all(running.splice(0).map(async h => { await h.stop() }))
})

function certify (net: Net, key: PrivateKey): CertificateChain {
  return [issueCertificate({ networkId: net.networkId, issuerSecretKey: net.rootSecret, issuerPublicKey: net.rootPublicKey, subject: key.publicKey.raw, capabilities: ['member'], issuedAt: Date.now(), ttlMs: 3_600_000 })]
}

/** Roles as the roles feature would advertise them, shared by every member of the test. */
type Roles = Map<string, { role: string, addrs: string[] }>

async function member (net: Net, roles: Roles, role: string): Promise<Member> {
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  const chain = certify(net, key)
  const members: MemberHost = new MemberHost({
    networkId: net.networkId,
    rootPublicKey: net.rootPublicKey,
    credentials: () => ({ kind: 'member', chain }),
    isRevoked: () => false,
    presence: () => ({ role: roles.get(id)?.role ?? role, addrs: host.getMultiaddrs().map(a => a.toString()) }),
    redial: { bootstrap: () => [], dialable: () => true, intervalMs: 1_000 },
    links: {
      role: () => roles.get(id)?.role,
      advertised: () => [...roles].filter(([peerId]) => peerId !== id).map(([peerId, r]) => ({ peerId, ...r })),
      sweepMs: 300,
      idleGraceMs: 1_500
    },
    log: quietLog
  })
  const host = await createHost({
    privateKey: key,
    networkId: net.networkId,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    membership: members.policy,
    isVerified: (peer) => members.isVerified(peer.toString()),
    isRevoked: () => false,
    relayServer: false
  })
  await host.start()
  running.push(host)
  roles.set(id, { role, addrs: host.getMultiaddrs().map(a => a.toString()) })
  await members.attach(host)
  hosts.push(members)
  return { id, members, host }
}

const peersOf = (m: Member): Set<string> => new Set(m.host.getPeers().map(p => p.toString()))

describe('LinkKeeper', () => {
  it('fourteen members meeting through one founder end in the tiered mesh; gossip reaches all; a promotion re-shapes it', async () => {
    const rootSecret = randomSecretKey()
    const rootPublicKey = getPublicKey(rootSecret)
    const net = { rootSecret, rootPublicKey, networkId: networkIdOf(rootPublicKey) }
    const roles: Roles = new Map()
    const all: Member[] = []
    // 14: every sclerotium ends with 13 peers on one address, past gossipsub's IP colocation threshold
    for (let i = 0; i < 14; i++) all.push(await member(net, roles, i < 3 ? 'sclerotium' : 'rhizomorph'))
    const [founder] = all
    // everybody first dials the founder, as with an invite: a full star, then the policy
    // (a member's keeper may dial the founder at the same moment; one of the two connections can
    // then be closed while it opens, and the member is connected all the same)
    await Promise.all(all.slice(1).map(async m => {
      await m.host.dial(founder.host.getMultiaddrs()[0]).catch(async (err: Error) => {
        await waitFor(() => m.host.getConnections(founder.host.peerId).length > 0, { timeoutMs: 10_000, intervalMs: 100, what: `a connection to the founder after: ${err.message}` })
      })
    }))
    const sclerotia = all.slice(0, 3)
    const rhizomorphs = all.slice(3)
    const shaped = (): boolean =>
      sclerotia.every(s => sclerotia.every(o => o === s || peersOf(s).has(o.id))) &&
      rhizomorphs.every(r => sclerotia.every(s => peersOf(r).has(s.id)) && rhizomorphs.every(o => !peersOf(r).has(o.id)))
    await waitFor(shaped, { timeoutMs: 20_000, intervalMs: 200, what: 'sclerotia in a mesh, each rhizomorph linked to the three sclerotia and no other rhizomorph' })
    for (const r of rhizomorphs) expect(peersOf(r).size).toBe(SCLEROTIA_PER_RHIZOMORPH)

    // gossip still reaches everybody: two hops, over a sclerotium (the links closed on the
    // way must not leave a peer connected without a gossip stream)
    const topic = 'mycelium/test/links'
    const heard = new Set<string>()
    for (const m of all) {
      m.host.services.pubsub.subscribe(topic)
      m.host.services.pubsub.addEventListener('message', (evt) => { if (evt.detail.topic === topic) heard.add(m.id) })
    }
    await waitFor(async () => {
      await rhizomorphs[1].host.services.pubsub.publish(topic, new TextEncoder().encode(String(Date.now()))).catch(() => {})
      return all.every(m => m === rhizomorphs[1] || heard.has(m.id))
    }, { timeoutMs: 15_000, intervalMs: 1_000, what: 'a rhizomorph\'s gossip to reach every member' })

    // kept links carry the tags that make libp2p keep them and dial them again
    const tags = (await rhizomorphs[0].host.peerStore.get(sclerotia[1].host.peerId)).tags
    expect(tags.has(LINK_TAG)).toBe(true)
    expect(tags.has(LINK_KEEP_ALIVE_TAG)).toBe(true)
    expect(rhizomorphs[0].members.links()?.kept.every(k => k.kind === 'sclerotium' && k.connected)).toBe(true)

    // a promoted rhizomorph joins the sclerotia's mesh
    const promoted = rhizomorphs[0]
    roles.set(promoted.id, { ...roles.get(promoted.id)!, role: 'sclerotium' })
    await waitFor(() => sclerotia.every(s => peersOf(s).has(promoted.id)) && promoted.members.links()?.kept.every(k => k.kind === 'committee') === true,
      { timeoutMs: 15_000, intervalMs: 200, what: 'the new sclerotium linked to the other sclerotia' })
  }, 60_000)

  it('a peer whose outbound gossip stream closed unseen gets a new one and hears this member again', async () => {
    const rootSecret = randomSecretKey()
    const rootPublicKey = getPublicKey(rootSecret)
    const net = { rootSecret, rootPublicKey, networkId: networkIdOf(rootPublicKey) }
    const roles: Roles = new Map()
    const [a, b] = [await member(net, roles, 'sclerotium'), await member(net, roles, 'sclerotium')]
    await a.host.dial(b.host.getMultiaddrs()[0]).catch(() => {})
    const router = a.host.services.pubsub as unknown as { streamsOutbound: Map<string, { rawStream: { status: string } }> }
    await waitFor(() => router.streamsOutbound.has(b.id), { timeoutMs: 10_000, intervalMs: 100, what: 'a gossip stream from a to b' })
    // the state gossipsub 17 is left in when a stream closes before it listens for the close:
    // a closed stream in its table that nothing will take out
    const live = router.streamsOutbound.get(b.id)!
    const connection = a.host.getConnections(b.host.peerId)[0]
    const raw = await connection.newStream((live.rawStream as unknown as { protocol: string }).protocol)
    raw.abort(new Error('closed while it opened'))
    const Outbound = live.constructor as new (raw: unknown, onError: () => void, opts: object) => { rawStream: { status: string } }
    router.streamsOutbound.set(b.id, new Outbound(raw, () => {}, {}))
    await (live as unknown as { close: () => Promise<void> }).close()

    const topic = 'mycelium/test/after-repair'
    const heard: string[] = []
    b.host.services.pubsub.subscribe(topic)
    b.host.services.pubsub.addEventListener('message', (evt) => { if (evt.detail.topic === topic) heard.push(new TextDecoder().decode(evt.detail.data)) })
    a.host.services.pubsub.subscribe(topic)
    await waitFor(async () => {
      await a.host.services.pubsub.publish(topic, new TextEncoder().encode('from a')).catch(() => {})
      return heard.length > 0
    }, { timeoutMs: 15_000, intervalMs: 500, what: 'b to hear a again' })
    expect(heard[0]).toBe('from a')
    expect(b.host.services.pubsub.getSubscribers(topic).map(p => p.toString())).toContain(a.id)
    expect(router.streamsOutbound.get(b.id)?.rawStream.status).toBe('open')
  }, 60_000)

  it('a member whose dial failed is dialled again as soon as other addresses of it are known, not after the backoff', async () => {
    const rootSecret = randomSecretKey()
    const rootPublicKey = getPublicKey(rootSecret)
    const net = { rootSecret, rootPublicKey, networkId: networkIdOf(rootPublicKey) }
    // separate views: only `a` knows of `b`, so only `a` dials
    const aView: Roles = new Map()
    const a = await member(net, aView, 'sclerotium')
    const b = await member(net, new Map(), 'sclerotium')
    // `b` is first heard of with an address nothing listens on any more (a port it left)
    const gone = createServer()
    await new Promise<void>(resolve => gone.listen(0, '127.0.0.1', resolve))
    const port = (gone.address() as AddressInfo).port
    await new Promise(resolve => gone.close(resolve))
    aView.set(b.id, { role: 'sclerotium', addrs: [`/ip4/127.0.0.1/tcp/${port}`] })
    await new Promise(resolve => setTimeout(resolve, 1_000))
    expect(peersOf(a).has(b.id)).toBe(false)
    // its right address arrives well within the 5 s a failed dial waits before the next
    aView.set(b.id, { role: 'sclerotium', addrs: b.host.getMultiaddrs().map(x => x.toString()) })
    await waitFor(() => peersOf(a).has(b.id), { timeoutMs: 2_500, what: 'a to dial b at its new address' })
  })

  it('a link dialled on demand stays while it carries a stream and is closed once idle', async () => {
    const rootSecret = randomSecretKey()
    const rootPublicKey = getPublicKey(rootSecret)
    const net = { rootSecret, rootPublicKey, networkId: networkIdOf(rootPublicKey) }
    const roles: Roles = new Map()
    const all: Member[] = []
    for (let i = 0; i < 11; i++) all.push(await member(net, roles, i < 3 ? 'sclerotium' : 'rhizomorph'))
    const [a, b] = [all[5], all[6]]
    // the serving side answers and closes when the asking side is done, as a feature does
    await b.host.handle('/test/bundle/1.0.0', (stream) => { stream.addEventListener('remoteCloseWrite', () => { void stream.close() }) })
    // no roster has named anyone: the addresses come from the advertisements, as in a daemon
    await a.host.peerStore.merge(b.host.peerId, { multiaddrs: b.host.getMultiaddrs() })
    const stream = await a.host.dialProtocol(b.host.peerId, '/test/bundle/1.0.0')
    await new Promise(resolve => setTimeout(resolve, 3_000))
    expect(a.host.getConnections(b.host.peerId).length).toBeGreaterThan(0)
    await stream.close()
    await waitFor(() => a.host.getConnections(b.host.peerId).length === 0, { timeoutMs: 10_000, intervalMs: 200, what: 'the idle on-demand link to be closed' })
  }, 60_000)
})
