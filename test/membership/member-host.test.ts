// MemberHost on real libp2p hosts over loopback TCP: the verified set ends with the
// certificate or a revocation (and the connection with it), a roster names only peers that
// prove membership (and those count as members without a link), and refusals are classified by error class.
import { describe, it, expect, afterEach } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { PrivateKey } from '@libp2p/interface'
import { getPublicKey, randomSecretKey } from '../../crypto/index.ts'
import {
  MemberHost, issueCertificate, networkIdOf, encodeRoster, rosterProtocol, protocolPrefix, quietLog,
  type CertificateChain, type DepartureReason, type RosterEntry
} from '../../membership/index.ts'
import { createHost, type MyceliumHost } from '../../node/host/index.ts'
import { waitFor } from '../harness/index.ts'

interface Network { rootSecret: Uint8Array, rootPublicKey: Uint8Array, networkId: string }

function network (): Network {
  const rootSecret = randomSecretKey()
  const rootPublicKey = getPublicKey(rootSecret)
  return { rootSecret, rootPublicKey, networkId: networkIdOf(rootPublicKey) }
}

function certify (net: Network, key: PrivateKey, ttlMs: number, issuedAt = Date.now()): CertificateChain {
  return [issueCertificate({ networkId: net.networkId, issuerSecretKey: net.rootSecret, issuerPublicKey: net.rootPublicKey, subject: key.publicKey.raw, capabilities: ['member'], issuedAt, ttlMs })]
}

interface Member { key: PrivateKey, id: string, members: MemberHost, host: MyceliumHost, revoked: Set<string>, departed: Array<[string, DepartureReason]> }

const running: MyceliumHost[] = []
const hosts: MemberHost[] = []
afterEach(async () => {
  await Promise.all(hosts.splice(0).map(async m => { await m.detach() }))
  await Promise.all(running.splice(0).map(async h => { await h.stop() }))
})

async function member (net: Network, options: { ttlMs?: number, key?: PrivateKey, chain?: CertificateChain } = {}): Promise<Member> {
  const key = options.key ?? await generateKeyPair('Ed25519')
  const chain = options.chain ?? certify(net, key, options.ttlMs ?? 3_600_000)
  const revoked = new Set<string>()
  const departed: Array<[string, DepartureReason]> = []
  const members = new MemberHost({
    networkId: net.networkId,
    rootPublicKey: net.rootPublicKey,
    credentials: () => ({ kind: 'member', chain }),
    isRevoked: (peerId) => revoked.has(peerId),
    presence: () => ({ role: 'sclerotium', addrs: host.getMultiaddrs().map(a => a.toString()) }),
    dialLearned: false,
    log: quietLog
  })
  members.onDeparted((peerId, why) => { departed.push([peerId, why]) })
  const host = await createHost({
    privateKey: key,
    networkId: net.networkId,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    membership: members.policy,
    isVerified: (peer) => members.isVerified(peer.toString()),
    isRevoked: (peerId) => revoked.has(peerId),
    relayServer: false
  })
  await host.start()
  running.push(host)
  await members.attach(host)
  hosts.push(members)
  return { key, id: peerIdFromPrivateKey(key).toString(), members, host, revoked, departed }
}

describe('MemberHost', () => {
  it('closes a connection when the peer\'s certificate expires, and refuses it from then on as expired', async () => {
    const net = network()
    const a = await member(net)
    const b = await member(net, { ttlMs: 4_000 })
    await b.host.dial(a.host.getMultiaddrs()[0])
    await waitFor(() => a.members.isVerified(b.id), { timeoutMs: 5_000, what: 'b to be verified' })
    expect(a.members.expiryOf(b.id)).toBeGreaterThan(Date.now())
    await waitFor(() => a.host.getConnections(b.host.peerId).length === 0, { timeoutMs: 6_000, what: 'a to close the expired member\'s connection' })
    expect(a.members.isVerified(b.id)).toBe(false)
    expect(a.departed).toContainEqual([b.id, 'expired'])
    await expect(b.host.dial(a.host.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
    await waitFor(() => a.members.rejected().some(r => r.peerId === b.id && r.kind === 'expired' && !r.byPeer), { timeoutMs: 5_000, what: 'the refusal to be classified as expired' })
  })

  it('closes a revoked member\'s connection at once; the revoked side learns it was refused for revocation', async () => {
    const net = network()
    const a = await member(net)
    const b = await member(net)
    await b.host.dial(a.host.getMultiaddrs()[0])
    await waitFor(() => a.members.isVerified(b.id), { timeoutMs: 5_000, what: 'b to be verified' })
    a.revoked.add(b.id)
    expect(a.members.isVerified(b.id)).toBe(false)
    await waitFor(() => a.host.getConnections(b.host.peerId).length === 0, { timeoutMs: 3_000, what: 'the revoked member to be hung up on' })
    expect(a.departed).toContainEqual([b.id, 'revoked'])
    // b was not revoked by its own list, so it dials again and is refused for the revocation
    a.revoked.delete(b.id)
    const c = await member(net)
    c.revoked.add(b.id)
    await expect(b.host.dial(c.host.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
    await waitFor(() => b.members.rejected().some(r => r.peerId === c.id && r.byPeer && r.kind === 'revoked'), { timeoutMs: 5_000, what: 'b to learn the refusal was a revocation' })
  })

  it('a stranger of another network is refused as other-network', async () => {
    const a = await member(network())
    const stranger = await member(network())
    await expect(stranger.host.dial(a.host.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
    await waitFor(() => a.members.rejected().some(r => r.peerId === stranger.id && r.kind === 'other-network'), { timeoutMs: 5_000, what: 'the stranger to be classified' })
  })

  it('a roster flood from a member keeps only peers that prove membership', async () => {
    const net = network()
    const a = await member(net)
    const liar = await member(net)
    const real = await member(net)
    const heard: RosterEntry[][] = []
    a.members.onRoster((from, _presence, entries) => { if (from === liar.id) heard.push(entries) })
    await liar.host.dial(a.host.getMultiaddrs()[0])
    await waitFor(() => a.members.isVerified(liar.id), { timeoutMs: 5_000, what: 'the liar to be verified' })
    // the connection itself started one roster exchange (the dialler starts it); the next is allowed a second later
    await new Promise(resolve => setTimeout(resolve, 1_100))

    // 250 made-up peers: some with no certificate, some with a certificate of another
    // network, some with a real member's certificate under another peer id; one real member
    const other = network()
    const forged: RosterEntry[] = []
    for (let i = 0; i < 250; i++) {
      const key = await generateKeyPair('Ed25519')
      const id = peerIdFromPrivateKey(key).toString()
      const addrs = [`/ip4/10.9.${i % 250}.1/tcp/4001`]
      if (i % 3 === 0) forged.push({ peerId: id, addrs })
      else if (i % 3 === 1) forged.push({ peerId: id, addrs, chain: certify(other, key, 3_600_000) })
      else forged.push({ peerId: id, addrs, chain: certify(net, real.key, 3_600_000) })
    }
    forged.push({ peerId: real.id, addrs: real.host.getMultiaddrs().map(a => a.toString()), chain: certify(net, real.key, 3_600_000) })
    const stream = await liar.host.dialProtocol(a.host.peerId, rosterProtocol(protocolPrefix(net.networkId)))
    const lp = lpStream(stream)
    await lp.write(encodeRoster({ me: { role: 'sclerotium', addrs: [] }, peers: forged }))
    await lp.read()
    await stream.close()

    await waitFor(() => heard.some(entries => entries.some(e => e.peerId === real.id)), { timeoutMs: 5_000, what: 'the forged roster to be read' })
    const entries = heard.find(e => e.some(x => x.peerId === real.id))!
    expect(entries.map(e => e.peerId)).toEqual([real.id])
    const known = new Set(a.members.knownMembers().map(([id]) => id))
    expect(known.has(real.id)).toBe(true)
    expect(forged.slice(0, 250).some(f => known.has(f.peerId))).toBe(false)

    // a member proven by a roster's chain counts as a member (its signed entries are taken, as a
    // rhizomorph must take those of members it has no link to), though it is not verified here;
    // no made-up peer does, and a revoked one stops counting
    expect(a.members.isVerified(real.id)).toBe(false)
    expect(a.members.memberExpiry(real.id)).toBeGreaterThan(Date.now())
    expect(forged.slice(0, 250).filter(f => a.members.memberExpiry(f.peerId) !== undefined)).toEqual([])
    a.revoked.add(real.id)
    expect(a.members.memberExpiry(real.id)).toBeUndefined()
    a.revoked.delete(real.id)

    // asking again at once is refused: a roster costs the reader signature checks
    const askAgain = async (): Promise<unknown> => {
      const again = await liar.host.dialProtocol(a.host.peerId, rosterProtocol(protocolPrefix(net.networkId)))
      const lp2 = lpStream(again)
      await lp2.write(encodeRoster({ me: { role: 'sclerotium', addrs: [] }, peers: forged }))
      return await lp2.read({ signal: AbortSignal.timeout(3_000) })
    }
    await expect(askAgain()).rejects.toThrow()
  })
})
