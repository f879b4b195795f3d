// The engine's rules without a network: committees, quorums, locks, attempt slots, deadlines,
// message edge checks, evidence that does not prove its claim, and the trust ledger's arithmetic.
import { describe, it, expect } from 'vitest'
import { encodeCanonical, randomBytesOf, randomSecretKey, getPublicKey, peerIdOfPublicKey } from '../../crypto/index.ts'
import {
  selectCommittee, proposerOf, shortfall, quorumOf, commitRefusal, mayReveal, slotAt, RoundDeadlines, signMessage, decodeMessage, roundIdOf, commitmentOf,
  buildEvidence, verifyEvidence, buildCertificate, TrustLedger, TRUST_PENALTY, EXCLUSION_THRESHOLD, ConsensusMessageError, EvidenceInvalidError,
  type RoundHeader, type MessageSigner
} from '../../consensus/index.ts'

function signer (): MessageSigner {
  const secretKey = randomSecretKey()
  return { secretKey, peerId: peerIdOfPublicKey(getPublicKey(secretKey)) }
}

const members = Array.from({ length: 4 }, signer)
const header: RoundHeader = { op: 'test', key: 'k:1', seed: new Uint8Array(32), inputDigest: new Uint8Array(32), committee: members.map(m => m.peerId), attempt: 0, f: 1 }
const round = roundIdOf(header)

function vote (m: MessageSigner, result: Uint8Array): { commit: ReturnType<typeof signMessage<any>>, reveal: ReturnType<typeof signMessage<any>> } {
  const nonce = randomBytesOf(32)
  return {
    commit: signMessage(m, { t: 'commit', from: m.peerId, round, commitment: commitmentOf(result, nonce, m.peerId, round) }),
    reveal: signMessage(m, { t: 'reveal', from: m.peerId, round, result, nonce })
  }
}

describe('committees and quorums', () => {
  it('draws one committee per key, the same everywhere and for every attempt; attempts rotate the proposer', () => {
    const ids = Array.from({ length: 7 }, () => signer().peerId)
    const seed = randomBytesOf(32)
    const committee = selectCommittee(ids, seed, 1, 4)
    expect(committee).toHaveLength(4)
    expect(selectCommittee([...ids].reverse(), seed, 1, 4)).toEqual(committee)
    expect(new Set([0, 1, 2, 3, 4].map(a => proposerOf(committee, a)))).toEqual(new Set(committee))
    expect(proposerOf(committee, 4)).toBe(proposerOf(committee, 0))
    expect(selectCommittee(ids, randomBytesOf(32), 1, 4)).not.toEqual(committee)
    // f is what is configured: too few candidates give no committee (and say why), never a weaker f.
    expect(selectCommittee(ids.slice(0, 6), seed, 2, 7)).toEqual([])
    expect(shortfall(ids.slice(0, 6), 2)).toMatch(/f = 2 needs 7 committee candidates, the certified epoch names 6/)
    expect(shortfall(ids, 2)).toBeUndefined()
  })

  it('needs 2f+1 of 3f+1 and keeps any two quorums overlapping in f+1 members', () => {
    expect(quorumOf(1, 4)).toBe(3)
    expect(quorumOf(2, 7)).toBe(5)
    expect(quorumOf(1, 7)).toBe(5)
    for (let n = 4; n <= 40; n++) {
      const f = Math.floor((n - 1) / 3)
      expect(2 * quorumOf(f, n) - n).toBeGreaterThanOrEqual(f + 1)
    }
  })
})

describe('locks', () => {
  const d1 = new Uint8Array(32).fill(1)
  const d2 = new Uint8Array(32).fill(2)
  const r = (a: number): Uint8Array => new Uint8Array(32).fill(100 + a)
  const ballot = { result: new Uint8Array(1), nonce: new Uint8Array(32) }

  it('commits once an attempt, never in an older one', () => {
    expect(commitRefusal(undefined, 0, d1, undefined)).toBeUndefined()
    const votes = { committed: { attempt: 3, round: r(3), inputDigest: d1, ...ballot } }
    expect(commitRefusal(votes, 3, d1, undefined)).toMatch(/already committed/)
    expect(commitRefusal(votes, 2, d1, undefined)).toMatch(/later attempt/)
    expect(commitRefusal(votes, 4, d2, undefined)).toBeUndefined()
  })

  it('once locked, commits to another input only with a polka from the lock\'s attempt or later', () => {
    const votes = { committed: { attempt: 3, round: r(3), inputDigest: d1, ...ballot }, lock: { attempt: 3, inputDigest: d1, result: ballot.result, proposal: new Uint8Array(), commits: [] } }
    expect(commitRefusal(votes, 4, d1, undefined)).toBeUndefined()
    expect(commitRefusal(votes, 4, d2, undefined)).toMatch(/locked/)
    expect(commitRefusal(votes, 5, d2, 2)).toMatch(/locked/)
    expect(commitRefusal(votes, 5, d2, 3)).toBeUndefined()
    expect(commitRefusal(votes, 5, d2, 4)).toBeUndefined()
    // A polka must come from before the attempt it justifies.
    expect(commitRefusal(votes, 5, d2, 5)).toMatch(/locked/)
  })

  it('reveals only in the attempt of its latest commit', () => {
    const votes = { committed: { attempt: 3, round: r(3), inputDigest: d1, ...ballot } }
    expect(mayReveal(votes, 3, r(3))).toBe(true)
    expect(mayReveal(votes, 2, r(2))).toBe(false)
    expect(mayReveal(votes, 3, r(4))).toBe(false)
    expect(mayReveal(undefined, 0, r(0))).toBe(false)
  })

  it('lays attempts out in time, longer after each round of proposers', () => {
    const slots = { from: 10_000, ms: 100 }
    expect(slotAt(slots, 4, 0)).toEqual({ attempt: 0, endsAt: 10_100 })
    expect(slotAt(slots, 4, 10_399)).toEqual({ attempt: 3, endsAt: 10_400 })
    // attempts 4..7 last 200 ms each
    expect(slotAt(slots, 4, 10_400)).toEqual({ attempt: 4, endsAt: 10_600 })
    expect(slotAt(slots, 4, 11_199)).toEqual({ attempt: 7, endsAt: 11_200 })
    expect(slotAt(slots, 4, 11_200)).toEqual({ attempt: 8, endsAt: 11_500 })
  })
})

describe('deadlines', () => {
  it('follow an injected RTT, and otherwise the measured arrival times', () => {
    let rtt = 50
    const injected = new RoundDeadlines({ rtt: () => rtt, minMs: 100, maxMs: 5000, factor: 2 })
    expect(injected.phaseMs()).toBe(100)
    rtt = 400
    expect(injected.phaseMs()).toBe(800)
    rtt = 1e6
    expect(injected.phaseMs()).toBe(5000)
    const measured = new RoundDeadlines({ minMs: 100, maxMs: 5000, factor: 2 })
    for (let i = 0; i < 30; i++) measured.observe(300)
    const slow = measured.phaseMs()
    expect(slow).toBeGreaterThanOrEqual(600)
    for (let i = 0; i < 60; i++) measured.observe(20)
    expect(measured.phaseMs()).toBeLessThan(slow)
  })
})

describe('messages at the edge', () => {
  it('rejects bad signatures, non-canonical bytes, unknown kinds and oversized input', () => {
    const m = members[0]
    const good = signMessage(m, { t: 'commit', from: m.peerId, round, commitment: randomBytesOf(32) })
    expect(decodeMessage(good.bytes).body.from).toBe(m.peerId)
    const flipped = Uint8Array.from(good.bytes)
    flipped[flipped.length - 1] ^= 1
    expect(() => decodeMessage(flipped)).toThrow(ConsensusMessageError)
    const other = signMessage(members[1], { t: 'commit', from: members[1].peerId, round, commitment: randomBytesOf(32) })
    // Someone else's signature over this body.
    const raw = encodeCanonical([encodeCanonical(good.body), other.sig])
    expect(() => decodeMessage(raw)).toThrow(/signature/)
    const nonCanonical = Uint8Array.from([0x82, 0x59, 0x00, 0x01, 0x00, 0x40])
    expect(() => decodeMessage(nonCanonical)).toThrow(ConsensusMessageError)
    expect(() => decodeMessage(new Uint8Array(2 * 1024 * 1024))).toThrow(/too large/)
    expect(() => signMessage(m, { t: 'commit', from: members[1].peerId, round, commitment: randomBytesOf(32) })).toThrow()
  })
})

describe('evidence', () => {
  const result = randomBytesOf(32)
  const votes = members.slice(0, 3).map(m => vote(m, result))
  const cert = buildCertificate(header, result, votes)

  it('proves equivocation, mismatch and conflicting certificates, and refuses claims that prove nothing', () => {
    const m = members[3]
    const c1 = signMessage(m, { t: 'commit', from: m.peerId, round, commitment: randomBytesOf(32) })
    const c2 = signMessage(m, { t: 'commit', from: m.peerId, round, commitment: randomBytesOf(32) })
    expect(verifyEvidence(buildEvidence('equivocate', m.peerId, header, [c1, c2]).bytes).reason).toBe('equivocate')
    expect(() => verifyEvidence(buildEvidence('equivocate', m.peerId, header, [c1, c1]).bytes)).toThrow(EvidenceInvalidError)
    // Two messages of two different members are no equivocation.
    expect(() => verifyEvidence(buildEvidence('equivocate', m.peerId, header, [c1, votes[0].commit]).bytes)).toThrow(EvidenceInvalidError)
    // Two commits of one member in two rounds are no equivocation.
    const otherRound = roundIdOf({ ...header, attempt: 1 })
    const elsewhere = signMessage(m, { t: 'commit', from: m.peerId, round: otherRound, commitment: randomBytesOf(32) })
    expect(() => verifyEvidence(buildEvidence('equivocate', m.peerId, header, [c1, elsewhere]).bytes)).toThrow(/another round/)
    // An honest member's matching commit and reveal are no mismatch and no dissent.
    expect(() => verifyEvidence(buildEvidence('mismatch', members[0].peerId, header, [votes[0].commit, votes[0].reveal]).bytes)).toThrow(EvidenceInvalidError)
    expect(() => verifyEvidence(buildEvidence('dissent', members[0].peerId, header, [votes[0].commit, votes[0].reveal], cert).bytes)).toThrow(EvidenceInvalidError)
    const outsider = signer()
    expect(() => verifyEvidence(buildEvidence('equivocate', outsider.peerId, header, [c1, c2]).bytes)).toThrow(EvidenceInvalidError)
    // Two certificates of one key with different results: those who signed both are proven faulty.
    const h1 = { ...header, attempt: 1 }
    const r1 = roundIdOf(h1)
    const other = randomBytesOf(32)
    const votes1 = members.slice(1, 4).map(mm => {
      const nonce = randomBytesOf(32)
      return { commit: signMessage(mm, { t: 'commit', from: mm.peerId, round: r1, commitment: commitmentOf(other, nonce, mm.peerId, r1) }), reveal: signMessage(mm, { t: 'reveal', from: mm.peerId, round: r1, result: other, nonce }) }
    })
    const cert1 = buildCertificate(h1, other, votes1)
    expect(verifyEvidence(buildEvidence('conflict', members[1].peerId, header, [], cert, cert1).bytes).reason).toBe('conflict')
    expect(() => verifyEvidence(buildEvidence('conflict', members[0].peerId, header, [], cert, cert1).bytes)).toThrow(/did not sign both/)
    expect(() => verifyEvidence(buildEvidence('conflict', members[1].peerId, header, [], cert, cert).bytes)).toThrow(/agree/)
    // A proposal as bad-proposal evidence must be the accused's own, of this round.
    const p = signMessage(members[0], { t: 'proposal', from: members[0].peerId, header, input: new Uint8Array(4), polka: null })
    expect(verifyEvidence(buildEvidence('bad-proposal', members[0].peerId, header, [p]).bytes).reason).toBe('bad-proposal')
    expect(() => verifyEvidence(buildEvidence('bad-proposal', members[1].peerId, header, [p]).bytes)).toThrow(/someone else/)
  })

  it('slashes by rule, once per fault', () => {
    const ledger = new TrustLedger()
    const accused = members[3].peerId
    const c1 = signMessage(members[3], { t: 'commit', from: accused, round, commitment: randomBytesOf(32) })
    const r1 = signMessage(members[3], { t: 'reveal', from: accused, round, result: randomBytesOf(4), nonce: randomBytesOf(32) })
    const mismatch = verifyEvidence(buildEvidence('mismatch', accused, header, [c1, r1]).bytes)
    expect(ledger.apply(mismatch)).toBe(true)
    expect(ledger.trust(accused)).toBeCloseTo(1 - TRUST_PENALTY.mismatch)
    // The same fault reported again changes nothing.
    expect(ledger.apply(mismatch)).toBe(false)
    const c2 = signMessage(members[3], { t: 'commit', from: accused, round, commitment: randomBytesOf(32) })
    ledger.apply(verifyEvidence(buildEvidence('equivocate', accused, header, [c1, c2]).bytes))
    expect(ledger.trust(accused)).toBe(0)
    expect(ledger.isExcluded(accused)).toBe(true)
    expect(ledger.eligible(members.map(m => m.peerId))).not.toContain(accused)
    ledger.reward(accused)
    expect(ledger.trust(accused)).toBe(0)
    expect(ledger.report().threshold).toBe(EXCLUSION_THRESHOLD)
    expect(ledger.slashesOf(accused).map(s => s.reason)).toEqual(['mismatch', 'equivocate'])
  })
})
