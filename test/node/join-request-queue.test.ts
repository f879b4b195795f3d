// The join-request queue, its codes and the per-source budget, in this process: the limits a
// flood meets (the daemon test drives the same through HTTP).
import { describe, it, expect } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { JoinRequests, SourceRateLimit, sourceOf, newApprovalCode, normalizeApprovalCode } from '../../node/browser/index.ts'

const peerIds = async (n: number): Promise<string[]> => await Promise.all(Array.from({ length: n }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))

describe('join requests', () => {
  it('one source holds at most four waiting requests; a full queue drops its oldest', async () => {
    const ids = await peerIds(40)
    const queue = new JoinRequests()
    for (const id of ids.slice(0, 10)) queue.add(id, 'flood', 1000)
    expect(queue.pending(1000).map(r => r.peerId)).toEqual(ids.slice(6, 10))
    // 32 waiting from eight sources, then one more: the oldest goes, the newest is in
    const full = new JoinRequests()
    ids.slice(0, 33).forEach((id, i) => full.add(id, `s${i % 9}`, 1000 + i))
    const pending = full.pending(2000)
    expect(pending.length).toBe(32)
    expect(pending.map(r => r.peerId)).not.toContain(ids[0])
    expect(pending.map(r => r.peerId)).toContain(ids[32])
  })

  it('codes are random, unambiguous and typed in any form; a peer id approves only in full', async () => {
    const codes = new Set(Array.from({ length: 2000 }, () => newApprovalCode()))
    expect(codes.size).toBe(2000)
    for (const c of codes) expect(c).toMatch(/^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$/)
    expect(normalizeApprovalCode(' abcd efgh ')).toBe('ABCD-EFGH')
    expect(normalizeApprovalCode('ABCD-EFG0')).toBeUndefined()
    const [id] = await peerIds(1)
    const queue = new JoinRequests()
    const { code } = queue.add(id, 'a')
    expect(queue.find(id.slice(-6))).toBeUndefined()
    expect(queue.find(id.slice(0, -1))).toBeUndefined()
    expect(queue.find(id)?.code).toBe(code)
    expect(queue.find(code.replace('-', '').toLowerCase())?.peerId).toBe(id)
  })
})

describe('per-source rate limit', () => {
  it('allows a burst, then one per refill period; other sources are not affected', () => {
    const limit = new SourceRateLimit({ burst: 2, refillMs: 1000 })
    expect(limit.take('a', 0)).toBeUndefined()
    expect(limit.take('a', 0)).toBeUndefined()
    expect(limit.take('a', 0)).toBe(1000)
    expect(limit.take('b', 0)).toBeUndefined()
    expect(limit.take('a', 1000)).toBeUndefined()
    expect(limit.take('a', 1000)).toBeGreaterThan(0)
  })

  it('an IPv6 host counts by its /64; IPv4-mapped addresses as IPv4', () => {
    expect(sourceOf('2001:db8:1:2:aaaa::1')).toBe(sourceOf('2001:db8:1:2:bbbb:cccc:dddd:eeee'))
    expect(sourceOf('2001:db8:1:2::1')).not.toBe(sourceOf('2001:db8:1:3::1'))
    expect(sourceOf('::ffff:192.0.2.7')).toBe('192.0.2.7')
    expect(sourceOf('192.0.2.7')).toBe('192.0.2.7')
  })
})
