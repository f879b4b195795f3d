import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { decodeEntry, verifyEntrySignature, signEntry, mayWrite, ConnectionLog, SchemaError, ENTRY_CODECS, type SignedEntry, type TrustAuthority } from '../../spores/index.ts'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import { decodeBody } from '../../spores/entry/body-decoder.ts'
import { identity, entry, nodeValue, healthValue, networkRoot } from './fixtures.ts'

const signers = [identity(), identity(), identity()]

const nodeArb = fc.record({
  addrs: fc.array(fc.integer({ min: 1, max: 65535 }).map(p => `/ip4/127.0.0.1/tcp/${p}`), { maxLength: 4 }),
  role: fc.constantFrom('sclerotium', 'rhizomorph', 'hyphae'),
  hardware: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter(k => k !== '__proto__'), fc.oneof(fc.integer(), fc.boolean(), fc.string({ maxLength: 10 })), { maxKeys: 4 })
})

const signedArb = fc.record({
  who: fc.integer({ min: 0, max: 2 }),
  value: nodeArb,
  seq: fc.nat(),
  issuedAt: fc.nat({ max: 2 ** 45 }),
  expiresAt: fc.option(fc.nat({ max: 2 ** 45 }), { nil: undefined })
}).map(r => signEntry(signers[r.who], { type: 'node', key: signers[r.who].peerId, value: r.value, seq: r.seq, issuedAt: r.issuedAt, ...(r.expiresAt === undefined ? {} : { expiresAt: r.expiresAt }) }))

describe('spore entry codec', () => {
  it('round-trips every signed entry through its one canonical encoding', () => {
    fc.assert(fc.property(signedArb, (e) => {
      const back = decodeEntry(e.bytes)
      expect(back.type).toBe(e.type)
      expect(back.key).toBe(e.key)
      expect(back.value).toEqual(e.value)
      expect(back.seq).toBe(e.seq)
      expect(back.expiresAt).toBe(e.expiresAt)
      expect(verifyEntrySignature(back)).toBe(true)
      expect(encodeCanonical([back.body, back.sig])).toEqual(e.bytes)
    }), { numRuns: 200 })
  })

  it('rejects any single mutated byte of a signed entry', () => {
    fc.assert(fc.property(signedArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (e, at, delta) => {
      const bytes = new Uint8Array(e.bytes)
      const i = at % bytes.length
      bytes[i] = (bytes[i] + delta) & 0xff
      let accepted = false
      try {
        accepted = verifyEntrySignature(decodeEntry(bytes))
      } catch {
        accepted = false
      }
      expect(accepted).toBe(false)
    }), { numRuns: 500 })
  })

  it('refuses to sign or decode an entry whose value breaks its type schema', () => {
    const s = identity()
    expect(() => signEntry(s, { type: 'health', key: s.peerId, value: { status: 'fine', load: 1, memFreeMiB: 1 } as any, seq: 1, issuedAt: 1 })).toThrow(SchemaError)
    expect(() => signEntry(s, { type: 'node', key: s.peerId, value: { ...nodeValue(), extra: 1 } as any, seq: 1, issuedAt: 1 })).toThrow(SchemaError)
    expect(() => signEntry(s, { type: 'nonsense' as any, key: s.peerId, value: {} as any, seq: 1, issuedAt: 1 })).toThrow(SchemaError)
    expect(decodeCanonical(ENTRY_CODECS.health.encode(healthValue()))).toEqual(healthValue())
    expect(() => ENTRY_CODECS.health.encode({ ...healthValue(), load: Number.NaN })).toThrow(SchemaError)
    const body = encodeCanonical({ type: 'health', key: s.peerId, value: { status: 'ok', load: -1, memFreeMiB: 1 }, origin: s.peerId, seq: 1, issuedAt: 1 })
    expect(() => decodeEntry(encodeCanonical([body, new Uint8Array(64)]))).toThrow(SchemaError)
  })

  it('refuses fields named like Object.prototype members (they passed as known fields and were dropped: two encodings of one value)', () => {
    const s = identity()
    for (const name of ['__proto__', 'toString', 'constructor']) {
      const value: Record<string, unknown> = { ...nodeValue() }
      Object.defineProperty(value, name, { value: 1, enumerable: true, writable: true, configurable: true })
      expect(() => ENTRY_CODECS.node.parse(value, 'node'), name).toThrow(SchemaError)
      expect(() => signEntry(s, { type: 'node', key: s.peerId, value: value as any, seq: 1, issuedAt: 1 }), name).toThrow(SchemaError)
    }
  })
})

describe('who may speak for which key', () => {
  const root = networkRoot()
  const member = identity()
  const trust: TrustAuthority = { rootPeerId: root.signer.peerId, committee: () => new Set([member.peerId]) }

  it('lets a node write its own node, health, uptime and usage records only', () => {
    const a = identity()
    const b = identity()
    expect(mayWrite(entry(a, 'node', nodeValue()), trust)).toBe(true)
    expect(mayWrite(entry(a, 'health', healthValue()), trust)).toBe(true)
    expect(mayWrite(entry(a, 'node', nodeValue(), { key: b.peerId }), trust)).toBe(false)
    expect(mayWrite(entry(a, 'uptime', { since: 1, uptimeS: 2 }, { key: b.peerId }), trust)).toBe(false)
  })

  it('lets the observer write connection records and the owner write service records', () => {
    const a = identity()
    const b = identity()
    const conn = { remote: b.peerId, state: 'connected' as const, since: 1, events: [{ at: 1, kind: 'c' as const }] }
    expect(mayWrite(entry(a, 'connection', conn, { key: `${a.peerId}/${b.peerId}` }), trust)).toBe(true)
    expect(mayWrite(entry(b, 'connection', conn, { key: `${a.peerId}/${b.peerId}` }), trust)).toBe(false)
    const svc = { name: 'mqtt', endpoints: ['/ip4/127.0.0.1/tcp/1883'] }
    expect(mayWrite(entry(a, 'service', svc, { key: `${a.peerId}/mqtt` }), trust)).toBe(true)
    expect(mayWrite(entry(b, 'service', svc, { key: `${a.peerId}/mqtt` }), trust)).toBe(false)
  })

  it('accepts trust entries only from the root, the current committee or with a verified certificate', () => {
    const subject = identity().peerId
    const v = { score: 0.2, reason: 'withheld reveal' }
    expect(mayWrite(entry(root.signer, 'trust', v, { key: subject }), trust)).toBe(true)
    expect(mayWrite(entry(member, 'trust', v, { key: subject }), trust)).toBe(true)
    const outsider = identity()
    expect(mayWrite(entry(outsider, 'trust', v, { key: subject }), trust)).toBe(false)
    const certified = entry(outsider, 'trust', { ...v, certificate: new Uint8Array([1, 2, 3]) }, { key: subject })
    expect(mayWrite(certified, trust)).toBe(false)
    expect(mayWrite(certified, { ...trust, verifyTrustCertificate: (_e: SignedEntry<'trust'>, c: Uint8Array) => c.length === 3 })).toBe(true)
  })
})

describe('connection log', () => {
  it('condenses a peer that flaps more than K times in the window into one tagged record with counts', () => {
    const log = new ConnectionLog({ intermittentAfter: 4, windowMs: 60_000 })
    const remote = identity().peerId
    let value = log.record(remote, 'connect', 1000)
    expect(value.events).toHaveLength(1)
    for (let i = 0; i < 9; i++) value = log.record(remote, i % 2 === 0 ? 'disconnect' : 'connect', 2000 + i * 100)
    expect(value.intermittent).toBe(true)
    expect(value.events).toBeUndefined()
    expect(value.connects).toBe(5)
    expect(value.disconnects).toBe(5)
    // once the flapping falls out of the window, the peer is an ordinary record again
    value = log.record(remote, 'connect', 200_000)
    expect(value.intermittent).toBeUndefined()
    expect(value.events).toEqual([{ at: 200_000, kind: 'c' }])
  })
})

describe('entry body decoder', () => {
  const scalar = fc.oneof(
    fc.integer({ min: -(2 ** 53) + 2, max: 2 ** 53 - 1 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter(d => !Object.is(d, -0) && !Number.isInteger(d)),
    fc.string(), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 40 })
  )
  const value = fc.letrec(tie => ({
    v: fc.oneof({ depthSize: 'small' }, scalar, fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.string().filter(k => k !== '__proto__'), tie('v'), { maxKeys: 4 }))
  })).v

  it('decodes what the canonical encoder writes exactly as decodeCanonical does', () => {
    fc.assert(fc.property(value, (v) => {
      const bytes = encodeCanonical(v)
      expect(decodeBody(bytes)).toEqual(decodeCanonical(bytes))
    }), { numRuns: 1000 })
  })

  it('agrees with the canonical encoder on subnormal and edge floats (a half kept as float32 is canonical)', () => {
    for (const v of [2 ** -24, 3 * 2 ** -24, 2 ** -15, 3 * 2 ** -20, -0.000029921531677246094, 2 ** -14, 65504.5, 1e-310, 0.1]) {
      const bytes = encodeCanonical(v)
      expect(decodeBody(bytes), String(v)).toBe(v)
    }
    // the same subnormal half written as float16 is not what the encoder writes
    expect(() => decodeBody(new Uint8Array([0xf9, 0x81, 0xf6]))).toThrow(/shortest form/)
    expect(() => decodeCanonical(new Uint8Array([0xf9, 0x81, 0xf6]))).toThrow()
  })

  it('never accepts bytes that decodeCanonical refuses', () => {
    fc.assert(fc.property(value, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (v, at, delta, cut) => {
      const bytes = new Uint8Array(encodeCanonical(v))
      const mutated = cut ? bytes.subarray(0, at % bytes.length) : bytes
      if (!cut) mutated[at % bytes.length] = (mutated[at % bytes.length] + delta) & 0xff
      let ours: unknown
      try {
        ours = decodeBody(mutated)
      } catch {
        return
      }
      expect(decodeCanonical(mutated)).toEqual(ours)
    }), { numRuns: 3000 })
  })
})
