import { describe, it, expect } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { balanceAdvice, sclerotiumTarget, encodeRoleAdvertisement, decodeRoleAdvertisement, InvalidRoleAdvertisementError, RoleView, type BalanceMember, type RoleAdvertisement } from '../../roles/index.ts'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'

function member (peerId: string, over: Partial<BalanceMember> = {}): BalanceMember {
  return { peerId, role: 'rhizomorph', dedicated: false, pinned: false, score: 60, fit: 'preferred', movable: true, ...over }
}

function promoted (members: BalanceMember[]): string[] {
  return members.filter(m => balanceAdvice(m.peerId, members).action === 'promote').map(m => m.peerId)
}

function demoted (members: BalanceMember[]): string[] {
  return members.filter(m => balanceAdvice(m.peerId, members).action === 'demote').map(m => m.peerId)
}

describe('sclerotium balancing over a shared view', () => {
  it('targets at least 3 and about √N sclerotia, never more than there are nodes', () => {
    expect([1, 2, 3, 8, 12, 16, 30, 100].map(n => sclerotiumTarget(n))).toEqual([1, 2, 3, 3, 3, 4, 5, 10])
    expect(sclerotiumTarget(12, { minSclerotia: 5, sqrtFactor: 1 })).toBe(5)
  })

  it('promotes exactly the missing number, strongest first, ties broken by peer id', () => {
    const view = [
      member('p-a', { score: 70 }), member('p-b', { score: 80 }), member('p-c', { score: 70 }),
      member('p-d', { score: 90, fit: 'possible' }), member('p-e', { score: 20, fit: 'unfit' }),
      member('p-f', { role: 'hyphae', fit: 'unfit', score: 10 }), member('p-g', { score: 50 }), member('p-h', { score: 50 }),
      member('p-i', { score: 50 }), member('p-j', { score: 50 })
    ]
    // 10 nodes → target 3; a preferred fit outranks a higher-scoring possible one
    expect(promoted(view).sort()).toEqual(['p-a', 'p-b', 'p-c'])
    const oneLeft = view.map(m => m.peerId === 'p-b' ? { ...m, role: 'sclerotium' as const } : m)
    expect(promoted(oneLeft).sort()).toEqual(['p-a', 'p-c'])
  })

  it('does not move nodes held by hysteresis unless the network is below its minimum', () => {
    const view = [member('s1', { role: 'sclerotium' }), member('s2', { role: 'sclerotium' }), member('s3', { role: 'sclerotium' }), member('r1', { score: 90, movable: false }), member('r2', { score: 40 })]
    // 16 nodes → target 4 but the minimum of 3 is met: the held node stays, the next one goes
    const many = [...view, ...Array.from({ length: 11 }, (_, i) => member(`h${i}`, { role: 'hyphae', fit: 'unfit' }))]
    expect(promoted(many)).toEqual(['r2'])
    // below the minimum, hysteresis gives way
    const urgent = [member('s1', { role: 'sclerotium' }), member('r1', { score: 90, movable: false }), member('r2', { score: 40 }), member('r3', { score: 30 })]
    expect(promoted(urgent).sort()).toEqual(['r1', 'r2'])
    expect(balanceAdvice('r1', urgent).urgent).toBe(true)
  })

  it('demotes the weakest dynamic sclerotia above target and never a dedicated one', () => {
    const view = [
      member('d1', { role: 'sclerotium', dedicated: true, pinned: true, score: 10 }),
      member('s1', { role: 'sclerotium', score: 90 }), member('s2', { role: 'sclerotium', score: 50 }),
      member('s3', { role: 'sclerotium', score: 60, fit: 'possible' }), member('s4', { role: 'sclerotium', score: 40, movable: false }),
      member('r1'), member('r2'), member('r3'), member('r4')
    ]
    // 9 nodes → target 3 of 5: the two weakest movable dynamic ones go (possible fit first)
    expect(demoted(view).sort()).toEqual(['s2', 's3'])
    const allDedicated = Array.from({ length: 5 }, (_, i) => member(`d${i}`, { role: 'sclerotium', dedicated: true, pinned: true }))
    expect(demoted([...allDedicated, member('r1'), member('r2')])).toEqual([])
  })

  it('reaches a fixed point: after the advised moves every node holds', () => {
    let view = Array.from({ length: 12 }, (_, i) => member(`n${String(i).padStart(2, '0')}`, { score: 40 + i }))
    for (let round = 0; round < 3; round++) {
      const up = new Set(promoted(view))
      const down = new Set(demoted(view))
      view = view.map(m => up.has(m.peerId) ? { ...m, role: 'sclerotium' as const, movable: false } : down.has(m.peerId) ? { ...m, role: 'rhizomorph' as const, movable: false } : m)
    }
    expect(view.filter(m => m.role === 'sclerotium').map(m => m.peerId).sort()).toEqual(['n09', 'n10', 'n11'])
    expect(view.every(m => balanceAdvice(m.peerId, view).action === 'hold')).toBe(true)
  })
})

describe('signed role advertisements', () => {
  const topic = 'mycelium/myctest/roles/1'

  async function signed (over: Partial<RoleAdvertisement> = {}): Promise<{ ad: RoleAdvertisement, bytes: Uint8Array, secret: Uint8Array }> {
    const key = await generateKeyPair('Ed25519')
    const secret = key.raw.subarray(0, 32)
    const ad: RoleAdvertisement = { peerId: peerIdFromPrivateKey(key).toString(), role: 'rhizomorph', dedicated: false, pinned: false, score: 61, fit: 'preferred', movable: true, seq: 1000, issuedAt: 1000, addrs: ['/ip4/127.0.0.1/tcp/4001'], ...over }
    return { ad, bytes: encodeRoleAdvertisement(ad, secret, topic), secret }
  }

  it('round-trips and verifies against the peer id', async () => {
    const { ad, bytes } = await signed()
    expect(decodeRoleAdvertisement(bytes, topic)).toEqual(ad)
  })

  it('rejects tampering, another network\'s topic, forged origins and malformed fields', async () => {
    const { ad, bytes, secret } = await signed()
    const outer = decodeCanonical(bytes) as { ad: RoleAdvertisement, sig: Uint8Array }
    const promotedSelf = encodeCanonical({ ad: { ...outer.ad, role: 'sclerotium' }, sig: outer.sig })
    expect(() => decodeRoleAdvertisement(promotedSelf, topic)).toThrow(/signature/)
    expect(() => decodeRoleAdvertisement(bytes, 'mycelium/other/roles/1')).toThrow(InvalidRoleAdvertisementError)
    const other = await signed()
    const forged = encodeRoleAdvertisement({ ...ad, peerId: other.ad.peerId }, secret, topic)
    expect(() => decodeRoleAdvertisement(forged, topic)).toThrow(/signature/)
    expect(() => decodeRoleAdvertisement(encodeRoleAdvertisement({ ...ad, score: 101 }, secret, topic), topic)).toThrow(/score/)
    expect(() => decodeRoleAdvertisement(encodeRoleAdvertisement({ ...ad, dedicated: true }, secret, topic), topic)).toThrow(/dedicated/)
    expect(() => decodeRoleAdvertisement(encodeCanonical({ ad: { ...outer.ad, extra: 1 }, sig: outer.sig }), topic)).toThrow(/fields/)
    expect(() => decodeRoleAdvertisement(new Uint8Array(5000), topic)).toThrow(/exceeds/)
  })

  it('keeps the newest advertisement per node, drops replays and expired ones', async () => {
    const view = new RoleView({ ttlMs: 10_000, maxSkewMs: 5_000, maxNodes: 2 })
    const { ad } = await signed()
    expect(view.accept(ad, 1_000)).toBe('new')
    expect(view.accept(ad, 1_000)).toBe('stale')
    expect(view.accept({ ...ad, seq: 1001, issuedAt: 1001, role: 'sclerotium' }, 1_001)).toBe('updated')
    expect(view.accept({ ...ad, seq: 900, issuedAt: 900 }, 1_002)).toBe('stale')
    expect(view.accept({ ...ad, seq: 9000, issuedAt: 9000 }, 1_002)).toBe('future')
    expect(view.counts().sclerotium).toBe(1)
    view.suspect(ad.peerId, 2_000, 500)
    expect(view.expire(2_400)).toEqual([])
    expect(view.expire(2_500)).toEqual([ad.peerId])
    // once gone, an old advertisement cannot be replayed back in
    expect(view.accept({ ...ad, seq: 1001, issuedAt: 1001 }, 2_600)).toBe('stale')
    expect(view.accept({ ...ad, seq: 1, issuedAt: 1 }, 20_000)).toBe('expired')
    // a sender whose clock runs behind is still judged fresh by when its advertisement arrived
    const late = (await signed()).ad
    expect(view.accept({ ...late, issuedAt: 16_000 }, 20_000)).toBe('new')
    expect(view.expire(29_000)).toEqual([])
    expect(view.expire(30_000)).toEqual([late.peerId])
  })
})
