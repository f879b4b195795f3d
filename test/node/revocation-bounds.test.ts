// Finding 10 of issue 14: the revocation list refused loudly when full (before, it stopped
// storing at 4,096 while the admin API answered success), revocations that can no longer
// matter are pruned, old revocations still decode, and the admission proof is compared in
// constant time.
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomSecretKey, getPublicKey, peerIdOfPublicKey, randomBytesOf, encodeCanonical, sign, toBase64Url, constantTimeEqual } from '../../crypto/index.ts'
import { admissionProof, checkAdmissionProof, networkIdOf } from '../../membership/index.ts'
import { Home, MemberBook } from '../../node/home/index.ts'
import { createNetwork } from '../../node/network/index.ts'
import { ApiError, type ApiHandler } from '../../node/api/index.ts'
import type { DaemonContext } from '../../node/daemon/feature.ts'
import {
  signRevocation, encodeRevocation, decodeRevocation, RevocationList, RevocationListFullError, MAX_REVOCATIONS,
  revokeOffline, revocationFeature, revocationUntil, REVOCATION_CLOCK_MARGIN_MS
} from '../../node/revocation/index.ts'

const scratch = mkdtempSync(join(tmpdir(), 'myc-revbounds-'))
afterAll(() => { rmSync(scratch, { recursive: true, force: true }) })
let homes = 0

const somePeer = (): string => peerIdOfPublicKey(getPublicKey(randomSecretKey()))

// peer ids of random 32-byte strings: cheap, and all a revocation needs is a distinct valid id
const somePeerFast = (): string => peerIdOfPublicKey(randomBytesOf(32))

/** A network administrator's home whose revocation list is already full. */
async function fullAdministrator (): Promise<{ home: Home, rootSecret: Uint8Array, network: { networkId: string, name: string, rootPublicKey: Uint8Array }, lines: string[] }> {
  const home = new Home(join(scratch, `admin-${homes++}`))
  const network = await createNetwork(home, 'n')
  const rootSecret = home.loadRootKey(network)!
  const lines = Array.from({ length: MAX_REVOCATIONS }, () => toBase64Url(encodeRevocation(signRevocation(rootSecret, network.networkId, somePeerFast(), Date.now()))))
  writeFileSync(home.path('revocations.json'), JSON.stringify(lines))
  return { home, rootSecret, network, lines }
}

describe('a full revocation list', () => {
  let admin: Awaited<ReturnType<typeof fullAdministrator>>
  beforeAll(async () => { admin = await fullAdministrator() })

  it('refuses a new revocation loudly: offline, through the admin API, and counts the ones peers send', async () => {
    const { home, rootSecret, network } = admin
    const victim = somePeer()
    expect(() => revokeOffline(home, victim)).toThrow(RevocationListFullError)

    const feature = revocationFeature()
    const ctx = { home, network } as unknown as DaemonContext
    feature.services!(ctx)
    const route = feature.routes!(ctx)['POST /network/revocations'] as ApiHandler
    const refusal = await Promise.resolve(route({ body: { peerId: victim }, query: new URLSearchParams() })).catch((err: unknown) => err)
    expect(refusal).toBeInstanceOf(ApiError)
    expect((refusal as ApiError).status).toBe(507)
    expect((refusal as ApiError).message).toMatch(/revocation list .* is full/)

    // one learned from a peer is counted, for the exchange to log
    const list = feature.list()!
    expect(list.has(victim)).toBe(false)
    expect(list.merge([encodeRevocation(signRevocation(rootSecret, network.networkId, victim, Date.now()))])).toEqual([])
    expect(list.refused).toBe(1)
    expect(list.has(victim)).toBe(false)
  })

  it('makes room by pruning revocations past their until', () => {
    const { home, rootSecret, network, lines } = admin
    let now = Date.now()
    const clock = { now: () => now }
    // one slot holds a revocation that stops mattering in an hour
    const shortLived = somePeer()
    writeFileSync(home.path('revocations.json'), JSON.stringify([...lines.slice(1), toBase64Url(encodeRevocation(signRevocation(rootSecret, network.networkId, shortLived, now, now + 3600_000)))]))
    const list = new RevocationList(home, network, clock)
    expect(list.has(shortLived)).toBe(true)
    expect(list.full).toBe(true)
    now += 3600_000
    expect(list.full).toBe(false)
    expect(list.has(shortLived)).toBe(false)
    const next = somePeer()
    expect(list.add(signRevocation(rootSecret, network.networkId, next, now))).toBe(true)
    expect(list.full).toBe(true)
    // one already past its until is not even stored
    expect(list.merge([encodeRevocation(signRevocation(rootSecret, network.networkId, somePeer(), now - 10, now - 1))])).toEqual([])
    expect(list.refused).toBe(0)
    expect(new RevocationList(home, network, clock).has(next)).toBe(true)
  })
})

describe('revocation until', () => {
  it('is derived from the certificates the administrator issued, and kept for good for a key it never certified', async () => {
    const home = new Home(join(scratch, `admin-${homes++}`))
    const network = await createNetwork(home, 'n')
    const now = Date.now()
    const issued = new MemberBook(home).list()
    const member = somePeer()
    const withMember = [...issued, { peerId: member, capabilities: ['member' as const], issuedAt: now, expiresAt: now + 1000 }]
    // the founder's issuer certificate bounds any delegated certificate the member could hold
    expect(revocationUntil(withMember, member, now)).toBe(Math.max(...withMember.map(c => c.expiresAt)) + REVOCATION_CLOCK_MARGIN_MS)
    expect(revocationUntil(withMember, somePeer(), now)).toBeUndefined()
    // revokeOffline signs it into the revocation
    new MemberBook(home).record({ networkId: network.networkId, subject: getPublicKey(randomSecretKey()), capabilities: ['member'], issuedAt: now, expiresAt: now + 1000, issuer: network.rootPublicKey, signature: new Uint8Array(64) })
    const target = new MemberBook(home).list().at(-1)!.peerId
    const r = revokeOffline(home, target)
    expect(r.until).toBeGreaterThan(now)
    expect(decodeRevocation(encodeRevocation(r), network.networkId, network.rootPublicKey).until).toBe(r.until)
  })

  it('is covered by the root signature, and revocations of the first format still decode', () => {
    const secret = randomSecretKey()
    const rootPublicKey = getPublicKey(secret)
    const networkId = networkIdOf(rootPublicKey)
    const peer = somePeer()
    // a revocation exactly as the first format signed and encoded it
    const at = 1_700_000_000_000
    const sig = sign(secret, encodeCanonical({ ctx: 'mycelium-revocation-v1', net: networkId, peer, at }))
    const old = decodeRevocation(encodeCanonical({ net: networkId, peer, at, sig }), networkId, rootPublicKey)
    expect(old.until).toBeUndefined()
    expect(old.peerId).toBe(peer)
    // moving until forward breaks the signature
    const r = signRevocation(secret, networkId, peer, at, at + 1000)
    expect(() => decodeRevocation(encodeRevocation({ ...r, until: at + 10_000_000 }), networkId, rootPublicKey)).toThrow(/not signed/)
    // removing it does too
    expect(() => decodeRevocation(encodeRevocation({ ...r, until: undefined }), networkId, rootPublicKey)).toThrow(/not signed/)
  })
})

describe('the admission proof', () => {
  it('is compared in constant time: every byte is read wherever the first difference is', () => {
    const secret = randomSecretKey()
    const id = new Uint8Array(16)
    const joiner = somePeer()
    const inviter = somePeer()
    const good = admissionProof(secret, id, 'mycaaaaaaaaaaaaaaaaaaaa', joiner, inviter)
    for (const firstWrong of [0, 15, 31]) {
      const guess = Uint8Array.from(good)
      guess[firstWrong] ^= 1
      const read = new Set<number>()
      // counts which bytes of the guess the comparison looked at
      const watched = new Proxy(guess, {
        get (target, prop) {
          if (typeof prop === 'string' && /^\d+$/.test(prop)) read.add(Number(prop))
          const value = Reflect.get(target, prop) as unknown
          return typeof value === 'function' ? value.bind(target) : value
        }
      })
      expect(checkAdmissionProof(watched, secret, id, 'mycaaaaaaaaaaaaaaaaaaaa', joiner, inviter)).toBe(false)
      expect(read.size).toBe(32)
    }
    expect(checkAdmissionProof(good, secret, id, 'mycaaaaaaaaaaaaaaaaaaaa', joiner, inviter)).toBe(true)
    expect(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3]))).toBe(false)
  })
})
