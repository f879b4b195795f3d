// The idle cost of the roles topic: when a node re-publishes its advertisement, how long an
// entry lives in a view without one, and what a departure notice can and cannot do.
import { describe, it, expect } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import {
  AdvertSchedule, RoleView, roleTiming, encodeRoleDeparture, decodeRoleDeparture, InvalidRoleDepartureError,
  WitnessLimit, MAX_PER_WITNESS_PER_MINUTE, type AdvertContent, type RoleAdvertisement, type RoleDeparture
} from '../../roles/index.ts'

const content: AdvertContent = { role: 'rhizomorph', dedicated: false, pinned: false, fit: 'preferred', movable: true, addrs: ['/ip4/127.0.0.1/tcp/4001'] }

describe('advertisement schedule', () => {
  const R = 60_000

  it('publishes a change at once and an unchanged advertisement only at the refresh, ¾–1 period later', () => {
    for (const random of [0, 0.5, 0.999]) {
      const s = new AdvertSchedule(R, () => random)
      expect(s.due(0, content)).toBe(true)
      s.published(0, content)
      expect(s.refreshAt).toBeGreaterThanOrEqual(0.75 * R)
      expect(s.refreshAt).toBeLessThanOrEqual(R)
      // every evaluation tick (5 s) until the refresh: nothing to send
      for (let t = 5_000; t < s.refreshAt; t += 5_000) expect(s.due(t, content)).toBe(false)
      expect(s.due(s.refreshAt, content)).toBe(true)
      // what others act on goes out at once
      expect(s.due(1, { ...content, role: 'sclerotium' })).toBe(true)
      expect(s.due(1, { ...content, movable: false })).toBe(true)
      expect(s.due(1, { ...content, addrs: ['/ip4/10.0.0.1/tcp/4001'] })).toBe(true)
    }
  })

  it('retries a publication nobody heard at the next tick, and re-advertises when asked (named gone while alive)', () => {
    const s = new AdvertSchedule(R, () => 0.5)
    s.published(0, content)
    expect(s.due(5_000, content)).toBe(false)
    s.failed()
    expect(s.due(5_000, content)).toBe(true)
    s.published(5_000, content)
    s.ask()
    expect(s.due(6_000, content)).toBe(true)
    s.published(6_000, content)
    expect(s.due(7_000, content)).toBe(false)
  })

  it('ages entries out after three refreshes: two lost refreshes keep a live node, a dead one is gone by the ttl', () => {
    const t = roleTiming()
    expect(t.ttlMs).toBe(3 * t.refreshIntervalMs)
    // the latest a refresh comes is one period after the previous one
    expect(t.ttlMs).toBeGreaterThan(2 * t.refreshIntervalMs)
  })
})

async function signer (): Promise<{ peerId: string, secret: Uint8Array }> {
  const key = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(key).toString(), secret: key.raw.subarray(0, 32) }
}

const ad = (peerId: string, seq: number, issuedAt = seq): RoleAdvertisement => ({ ...content, peerId, score: 50, seq, issuedAt })

describe('role view ageing', () => {
  const ttlMs = 180_000
  const maxSkewMs = 300_000

  it('drops an entry not refreshed within the ttl, keeps one refreshed in time', async () => {
    const view = new RoleView({ ttlMs, maxSkewMs, maxNodes: 16 })
    const a = (await signer()).peerId
    const b = (await signer()).peerId
    expect(view.accept(ad(a, 1000), 1000)).toBe('new')
    expect(view.accept(ad(b, 1000), 1000)).toBe('new')
    // b refreshes one period later; a never again (it crashed and nobody held a link to it)
    expect(view.accept(ad(b, 61_000), 61_000)).toBe('refreshed')
    expect(view.expire(1000 + ttlMs - 1)).toEqual([])
    expect(view.expire(1000 + ttlMs)).toEqual([a])
    expect(view.get(b)).toBeDefined()
  })

  it('a departure drops the advertisement it names and older ones, never a newer one, and no replay brings it back', async () => {
    const view = new RoleView({ ttlMs, maxSkewMs, maxNodes: 16 })
    const a = (await signer()).peerId
    view.accept(ad(a, 5000), 5000)
    expect(view.depart(a, 4999)).toBe(false)
    expect(view.get(a)?.seq).toBe(5000)
    expect(view.depart(a, 5000)).toBe(true)
    expect(view.get(a)).toBeUndefined()
    // a Byzantine member replays the dead node's last advertisement: refused
    expect(view.accept(ad(a, 5000), 6000)).toBe('stale')
    // the node itself, alive after all, advertises anew: taken
    expect(view.accept(ad(a, 7000), 7000)).toBe('new')
    // a departure heard before the advertisement it names still refuses that advertisement
    const b = (await signer()).peerId
    expect(view.depart(b, 9000)).toBe(false)
    expect(view.accept(ad(b, 9000), 9500)).toBe('stale')
  })

  it('bounds a replayed entry by its signing time: refused beyond the clock window, so it lives at most issuedAt + skew + ttl', async () => {
    const view = new RoleView({ ttlMs, maxSkewMs, maxNodes: 16 })
    const a = (await signer()).peerId
    // held back by a relay and handed to a node that never saw it, as late as the window allows
    const issuedAt = 1_000_000
    expect(view.accept(ad(a, issuedAt), issuedAt + maxSkewMs + 1)).toBe('expired')
    expect(view.accept(ad(a, issuedAt), issuedAt + maxSkewMs)).toBe('new')
    expect(view.expire(issuedAt + maxSkewMs + ttlMs)).toEqual([a])
  })
})

describe('signed departures', () => {
  const topic = 'mycelium/myctest/roles/1'

  it('round-trip, and refuse tampering, another network\'s topic, unknown fields and oversize', async () => {
    const witness = await signer()
    const gone = await signer()
    const d: RoleDeparture = { peerId: gone.peerId, seq: 42, witness: witness.peerId, issuedAt: 1000 }
    const bytes = encodeRoleDeparture(d, witness.secret, topic)
    expect(decodeRoleDeparture(bytes, topic)).toEqual(d)
    const outer = decodeCanonical(bytes) as { gone: RoleDeparture, sig: Uint8Array }
    expect(() => decodeRoleDeparture(encodeCanonical({ gone: { ...outer.gone, seq: 43 }, sig: outer.sig }), topic)).toThrow(/signature/)
    expect(() => decodeRoleDeparture(bytes, 'mycelium/other/roles/1')).toThrow(/signature/)
    // signed by someone other than the witness it names
    expect(() => decodeRoleDeparture(encodeRoleDeparture(d, gone.secret, topic), topic)).toThrow(InvalidRoleDepartureError)
    expect(() => decodeRoleDeparture(encodeCanonical({ gone: { ...d, extra: 1 }, sig: outer.sig }), topic)).toThrow(/fields/)
    expect(() => decodeRoleDeparture(new Uint8Array(2048), topic)).toThrow(/exceeds/)
  })

  it('are taken from one witness at most MAX_PER_WITNESS_PER_MINUTE times a minute', () => {
    const limit = new WitnessLimit()
    let taken = 0
    for (let i = 0; i < 100; i++) if (limit.take('w', 1000 + i)) taken++
    expect(taken).toBe(MAX_PER_WITNESS_PER_MINUTE)
    expect(limit.take('other', 2000)).toBe(true)
    expect(limit.take('w', 1000 + 60_001)).toBe(true)
  })
})
