import { describe, it, expect, afterEach } from 'vitest'
import fc from 'fast-check'
import { encodeCanonical } from '../../crypto/index.ts'
import { buildHeader, certifyEpoch, encodeEpoch, decodeEntry, latentVerdict, type Spores, type SignedEntry } from '../../spores/index.ts'
import { identity, networkRoot, tempDir, openTestSpores, entry, nodeValue, healthValue, NETWORK, type Root } from './fixtures.ts'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function fresh (root: Root = networkRoot(), extra: Parameters<typeof openTestSpores>[3] = {}): Promise<Spores> {
  const dir = await tempDir()
  const spores = await openTestSpores(dir.path, root, identity(), extra)
  cleanups.push(async () => { try { await spores.close() } finally { await dir.remove() } })
  return spores
}

async function acceptEpoch0 (spores: Spores, root: Root, entries: SignedEntry[], committee: string[] = []): Promise<void> {
  const h = buildHeader({ network: NETWORK, epoch: 0, prev: null, entries, committee, issuedAt: Date.now() })
  await spores.primary.accept(encodeEpoch(h.headerBytes, certifyEpoch(h.digest, [root.signer]), h.entries))
}

describe('validation-first merge', () => {
  it('merges a valid entry and lists it with its fields', async () => {
    const spores = await fresh()
    const a = identity()
    const [out] = await spores.merge('latent', [entry(a, 'node', nodeValue(1), { seq: 7 }).bytes])
    expect(out.status).toBe('merged')
    const ls = await spores.ls({ tier: 'latent', type: 'node' })
    expect(ls).toEqual([{ type: 'node', key: a.peerId, origin: a.peerId, seq: 7, issuedAt: ls[0].issuedAt, value: nodeValue(1) }])
    expect(spores.stats().tiers.latent.node.count).toBe(1)
  })

  it('rejects each kind of bad entry, counts it by reason and stores nothing', async () => {
    const root = networkRoot()
    const member = identity()
    const outsider = identity()
    const spores = await fresh(root, { isMember: (p) => p !== outsider.peerId, limits: { maxEntries: { service: 1 } } })
    const a = identity()
    const b = identity()
    const now = Date.now()
    const good = entry(a, 'node', nodeValue(), { seq: 5 })
    await spores.merge('latent', [good, entry(a, 'service', { name: 'web', endpoints: ['/ip4/127.0.0.1/tcp/80'] }, { key: `${a.peerId}/web` })])
    const tamperedSig = new Uint8Array(good.bytes)
    tamperedSig[tamperedSig.length - 1] ^= 1
    const wrongSchemaBody = encodeCanonical({ type: 'health', key: a.peerId, value: { status: 'meh' }, origin: a.peerId, seq: 1, issuedAt: now })
    const trustFromPrimary = entry(root.signer, 'trust', { score: 1, reason: 'founder' }, { key: b.peerId, seq: 10 })
    await acceptEpoch0(spores, root, [trustFromPrimary], [member.peerId])

    const cases: Array<[string, Uint8Array]> = [
      ['oversized', new Uint8Array(80 * 1024)],
      ['malformed', new TextEncoder().encode('{"type":"node"}')],
      ['schema', encodeCanonical([wrongSchemaBody, new Uint8Array(64)])],
      ['bad-signature', tamperedSig],
      ['unauthorized-origin', entry(a, 'node', nodeValue(), { key: b.peerId }).bytes],
      ['unknown-origin', entry(outsider, 'node', nodeValue()).bytes],
      ['expired', entry(b, 'node', nodeValue(), { expiresAt: now - 1 }).bytes],
      ['outside-window', entry(b, 'health', healthValue(), { issuedAt: now - 25 * 3600_000 }).bytes],
      ['future', entry(b, 'health', healthValue(), { issuedAt: now + 3600_000 }).bytes],
      ['limit', entry(b, 'service', { name: 'db', endpoints: [] }, { key: `${b.peerId}/db` }).bytes],
      ['higher-tier-conflict', entry(member, 'trust', { score: 0, reason: 'slander' }, { key: b.peerId, seq: 9 }).bytes],
      ['replay', good.bytes],
      ['replay', entry(a, 'node', nodeValue(9), { seq: 4 }).bytes]
    ]
    const before = await spores.ls({ tier: 'latent' })
    const outcomes = await spores.merge('latent', cases.map(c => c[1]))
    expect(outcomes.map(o => o.status === 'rejected' ? o.reason : 'merged')).toEqual(cases.map(c => c[0]))
    expect(await spores.ls({ tier: 'latent' })).toEqual(before)
    const counted: Record<string, number> = {}
    for (const byType of Object.values(spores.stats().tiers.latent)) for (const [reason, n] of Object.entries(byType.rejections)) counted[reason] = (counted[reason] ?? 0) + (n ?? 0)
    // oversized, malformed and schema rejections have no trustworthy type: they count under 'unknown'
    const expected: Record<string, number> = {}
    for (const [reason] of cases) expected[reason] = (expected[reason] ?? 0) + 1
    const unknown = spores.rejections.of('latent', 'unknown')
    for (const reason of ['oversized', 'malformed', 'schema']) counted[reason] = (counted[reason] ?? 0) + (unknown[reason as 'schema'] ?? 0)
    expect(counted).toEqual(expected)

    // gossip blames the sender (lowers its gossipsub score) only where it is provably at fault:
    // whoever sends a broken envelope or signature; the origin itself for a key it may not write;
    // nobody for what depends on this node's view (membership, clock, limits, what it holds)
    const forwarder = identity().peerId
    const originOf = (bytes: Uint8Array, i: number): string => ['oversized', 'malformed', 'schema', 'bad-signature'].includes(cases[i][0]) ? a.peerId : decodeEntry(bytes).origin
    const verdicts = outcomes.map((o, i) => o.status === 'rejected'
      ? [latentVerdict(o.reason, cases[i][1], originOf(cases[i][1], i)), latentVerdict(o.reason, cases[i][1], forwarder)]
      : [])
    expect(Object.fromEntries(cases.map(([reason], i) => [reason, verdicts[i]]))).toEqual({
      oversized: ['reject', 'reject'],
      malformed: ['reject', 'reject'],
      schema: ['ignore', 'ignore'],
      'bad-signature': ['reject', 'reject'],
      'unauthorized-origin': ['reject', 'ignore'],
      'unknown-origin': ['ignore', 'ignore'],
      expired: ['ignore', 'ignore'],
      'outside-window': ['ignore', 'ignore'],
      future: ['ignore', 'ignore'],
      limit: ['ignore', 'ignore'],
      'higher-tier-conflict': ['ignore', 'ignore'],
      replay: ['ignore', 'ignore']
    })
  })

  it('lets the owner move past the primary with a strictly newer entry, and no one else', async () => {
    const root = networkRoot()
    const spores = await fresh(root)
    const a = identity()
    await acceptEpoch0(spores, root, [entry(a, 'node', nodeValue(1), { seq: 10 })])
    const [same] = await spores.merge('latent', [entry(a, 'node', nodeValue(2), { seq: 10 })])
    expect(same).toMatchObject({ status: 'rejected', reason: 'higher-tier-conflict' })
    const [newer] = await spores.merge('latent', [entry(a, 'node', nodeValue(3), { seq: 11 })])
    expect(newer.status).toBe('merged')
    expect((await spores.ls({ tier: 'primary' }))[0].value).toEqual(nodeValue(1))
    expect((await spores.ls({ tier: 'latent' }))[0].value).toEqual(nodeValue(3))
  })

  it('lets a committee member revise a trust verdict the primary holds; a stranger cannot', async () => {
    const root = networkRoot()
    const spores = await fresh(root)
    const member = identity()
    const subject = identity()
    const trust = (by: typeof member, score: number, seq: number): SignedEntry => entry(by, 'trust', { score, reason: `verdict ${score}` }, { key: subject.peerId, seq })
    await acceptEpoch0(spores, root, [trust(member, 0.5, 10)], [member.peerId])
    const [lower] = await spores.merge('latent', [trust(member, 0.4, 10)])
    expect(lower).toMatchObject({ status: 'rejected', reason: 'higher-tier-conflict' })
    // trust has no owner, so it used to freeze once an epoch carried it
    const [revised] = await spores.merge('latent', [trust(member, 0, 11)])
    expect(revised.status).toBe('merged')
    const [stranger] = await spores.merge('latent', [trust(identity(), 1, 12)])
    expect(stranger.status).toBe('rejected')
  })

  it('drops latent entries that a newly accepted epoch overrides', async () => {
    const root = networkRoot()
    const spores = await fresh(root)
    const a = identity()
    const b = identity()
    await spores.merge('latent', [entry(a, 'node', nodeValue(1), { seq: 5 }), entry(b, 'node', nodeValue(2), { seq: 5 }), entry(root.signer, 'trust', { score: 0.5, reason: 'x' }, { key: a.peerId, seq: 1 })])
    // the epoch holds an older node entry of a (a's newer one stays), a newer one of b, and another trust verdict
    await acceptEpoch0(spores, root, [entry(a, 'node', nodeValue(3), { seq: 4 }), entry(b, 'node', nodeValue(4), { seq: 6 }), entry(root.signer, 'trust', { score: 0.9, reason: 'y' }, { key: a.peerId, seq: 2 })])
    const latent = await spores.ls({ tier: 'latent' })
    expect(latent.map(e => [e.type, e.key, e.seq])).toEqual([['node', a.peerId, 5]])
  })

  it('is idempotent and independent of arrival order for valid entries', async () => {
    const signers = [identity(), identity(), identity()]
    const base = Date.now() - 1000
    const versions = signers.flatMap((s, i) => [1, 2, 3].flatMap(seq => [0, 1].map(j => entry(s, 'node', nodeValue(i * 10 + seq + j), { seq, issuedAt: base + j }))))
    await fc.assert(fc.asyncProperty(fc.shuffledSubarray(versions, { minLength: 1 }), fc.integer({ min: 1, max: 5 }), async (picked, chunk) => {
      const x = await fresh()
      const y = await fresh()
      for (let i = 0; i < picked.length; i += chunk) await x.merge('latent', picked.slice(i, i + chunk).map(e => e.bytes))
      const reversed = [...picked].reverse()
      for (const e of reversed) await y.merge('latent', [e.bytes])
      const lx = await x.ls()
      expect(await y.ls()).toEqual(lx)
      const again = await x.merge('latent', picked.map(e => e.bytes))
      expect(again.every(o => o.status === 'rejected' && o.reason === 'replay')).toBe(true)
      expect(await x.ls()).toEqual(lx)
      for (const c of cleanups.splice(0).reverse()) await c()
    }), { numRuns: 12 })
  })

  it('holds the per-type limit and the temporal window under a flood', async () => {
    let now = Date.now()
    const spores = await fresh(networkRoot(), { clock: () => now, limits: { maxEntries: { health: 50 }, windowMs: 3600_000 } })
    const flooders = Array.from({ length: 40 }, () => identity())
    let merged = 0
    for (let round = 0; round < 5; round++) {
      const batch: Uint8Array[] = []
      for (const f of flooders) {
        batch.push(entry(f, 'health', healthValue(), { seq: round + 1, issuedAt: now }).bytes)
        batch.push(entry(f, 'health', healthValue(), { seq: 100 + round, issuedAt: now - 2 * 3600_000, key: f.peerId }).bytes)
      }
      const fresh2 = Array.from({ length: 40 }, () => entry(identity(), 'health', healthValue(), { issuedAt: now }).bytes)
      const outcomes = await spores.merge('latent', [...batch, ...fresh2])
      merged += outcomes.filter(o => o.status === 'merged').length
      expect(spores.stats().tiers.latent.health.count).toBeLessThanOrEqual(50)
      now += 40 * 60_000
    }
    expect(merged).toBeGreaterThan(50)
    expect(spores.rejections.total('limit')).toBeGreaterThan(0)
    expect(spores.rejections.total('outside-window')).toBeGreaterThan(0)
    await spores.prune()
    for (const e of await spores.ls({ tier: 'latent', type: 'health' })) expect(e.issuedAt).toBeGreaterThanOrEqual(now - 3600_000)
  })

  it('holds each origin to its share of a type, so one member cannot lock the others out', async () => {
    const spores = await fresh(networkRoot(), { limits: { maxEntries: { service: 64 }, originShare: 1 / 4 } })
    const flooder = identity()
    const other = identity()
    const service = (by: typeof flooder, i: number): SignedEntry => entry(by, 'service', { name: `s${i}`, endpoints: [] }, { key: `${by.peerId}/s${i}` })
    const outcomes = await spores.merge('latent', Array.from({ length: 40 }, (_, i) => service(flooder, i)))
    expect(outcomes.filter(o => o.status === 'merged')).toHaveLength(16)
    expect(outcomes.slice(16).every(o => o.status === 'rejected' && o.reason === 'origin-limit')).toBe(true)
    // a newer version of one of its own records is no new record: it still goes in
    const [again] = await spores.merge('latent', [entry(flooder, 'service', { name: 's0', endpoints: ['/ip4/10.0.0.1/tcp/1'] }, { key: `${flooder.peerId}/s0`, seq: 2 })])
    expect(again.status).toBe('merged')
    // the type is far from full: another member still writes
    const mine = await spores.merge('latent', Array.from({ length: 5 }, (_, i) => service(other, i)))
    expect(mine.every(o => o.status === 'merged')).toBe(true)
    expect(spores.rejections.of('latent', 'service')['origin-limit']).toBe(24)
    // gossip blames the flooder for its own entries past its share, not a peer forwarding them
    const rejected = outcomes.findIndex(o => o.status === 'rejected')
    const flood = service(flooder, rejected)
    expect(latentVerdict('origin-limit', flood.bytes, flooder.peerId)).toBe('reject')
    expect(latentVerdict('origin-limit', flood.bytes, other.peerId)).toBe('ignore')
  })

  it('keeps merged entries across a reopen of the database', async () => {
    const root = networkRoot()
    const dir = await tempDir()
    cleanups.push(dir.remove)
    const me = identity()
    const first = await openTestSpores(dir.path, root, me)
    const good = Array.from({ length: 20 }, (_, i) => entry(identity(), 'node', nodeValue(i)))
    await first.merge('latent', good.map(e => e.bytes))
    const before = await first.ls()
    await first.close()
    const second = await openTestSpores(dir.path, root, me)
    expect(await second.ls()).toEqual(before)
    expect(second.stats().tiers.latent.node.count).toBe(20)
    await second.close()
  })
})
