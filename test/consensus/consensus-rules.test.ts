// The engine's rules without a network: committees, quorums, deadlines, message edge checks,
// evidence that does not prove its claim, and the trust ledger's arithmetic.
import { describe, it, expect } from 'vitest'
import { encodeCanonical, randomBytesOf, randomSecretKey, getPublicKey, peerIdOfPublicKey } from '../../crypto/index.ts'
import {
  selectCommittee, quorumOf, effectiveF, ATTEMPTS_PER_COMMITTEE, RoundDeadlines, signMessage, decodeMessage, roundIdOf, commitmentOf,
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
  it('selects the same committee everywhere, rotates the proposer, then the membership', () => {
    const ids = Array.from({ length: 7 }, () => signer().peerId)
    const seed = randomBytesOf(32)
    const a0 = selectCommittee(ids, seed, 0, 4)
    expect(selectCommittee([...ids].reverse(), seed, 0, 4)).toEqual(a0)
    const a1 = selectCommittee(ids, seed, 1, 4)
    expect(new Set(a1)).toEqual(new Set(a0))
    expect(a1[0]).not.toBe(a0[0])
    const next = selectCommittee(ids, seed, ATTEMPTS_PER_COMMITTEE, 4)
    expect(next.filter(p => !a0.includes(p)).length).toBe(1)
    expect(selectCommittee(ids, randomBytesOf(32), 0, 4)).not.toEqual(a0)
  })

  it('needs 2f+1 of 3f+1 and keeps any two quorums overlapping in f+1 members', () => {
    expect(quorumOf(1, 4)).toBe(3)
    expect(quorumOf(2, 7)).toBe(5)
    expect(quorumOf(1, 7)).toBe(5)
    for (let n = 4; n <= 40; n++) {
      const f = effectiveF(Math.floor((n - 1) / 3), n)
      expect(2 * quorumOf(f, n) - n).toBeGreaterThanOrEqual(f + 1)
    }
    expect(effectiveF(2, 5)).toBe(1)
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

  it('proves equivocation and mismatch, and refuses claims that prove nothing', () => {
    const m = members[3]
    const c1 = signMessage(m, { t: 'commit', from: m.peerId, round, commitment: randomBytesOf(32) })
    const c2 = signMessage(m, { t: 'commit', from: m.peerId, round, commitment: randomBytesOf(32) })
    expect(verifyEvidence(buildEvidence('equivocate', m.peerId, header, [c1, c2]).bytes).reason).toBe('equivocate')
    expect(() => verifyEvidence(buildEvidence('equivocate', m.peerId, header, [c1, c1]).bytes)).toThrow(EvidenceInvalidError)
    // Two messages of two different members are no equivocation.
    expect(() => verifyEvidence(buildEvidence('equivocate', m.peerId, header, [c1, votes[0].commit]).bytes)).toThrow(EvidenceInvalidError)
    // An honest member's matching commit and reveal are no mismatch and no dissent.
    expect(() => verifyEvidence(buildEvidence('mismatch', members[0].peerId, header, [votes[0].commit, votes[0].reveal]).bytes)).toThrow(EvidenceInvalidError)
    expect(() => verifyEvidence(buildEvidence('dissent', members[0].peerId, header, [votes[0].commit, votes[0].reveal], cert).bytes)).toThrow(EvidenceInvalidError)
    // Withholding against a member who signed the certificate is a lie.
    const attest = signMessage(members[3], { t: 'attest', from: members[3].peerId, round, accused: members[0].peerId, fault: 'no-reveal' })
    expect(() => verifyEvidence(buildEvidence('withhold', members[0].peerId, header, [attest], cert).bytes)).toThrow(EvidenceInvalidError)
    const outsider = signer()
    expect(() => verifyEvidence(buildEvidence('equivocate', outsider.peerId, header, [c1, c2]).bytes)).toThrow(EvidenceInvalidError)
  })

  it('slashes by rule; attested faults from gossip need f+1 attesters', () => {
    const ledger = new TrustLedger()
    const accused = members[3].peerId
    const attestBy = (from: MessageSigner): ReturnType<typeof verifyEvidence> => {
      const a = signMessage(from, { t: 'attest', from: from.peerId, round, accused, fault: 'no-commit' })
      return verifyEvidence(buildEvidence('withhold', accused, header, [a], cert).bytes)
    }
    const first = attestBy(members[0])
    expect(ledger.apply(first, { own: false, attester: first.attester })).toBe(false)
    expect(ledger.trust(accused)).toBe(1)
    const second = attestBy(members[1])
    expect(ledger.apply(second, { own: false, attester: second.attester })).toBe(true)
    expect(ledger.trust(accused)).toBeCloseTo(1 - TRUST_PENALTY.withhold)
    // The same fault reported again changes nothing.
    const third = attestBy(members[2])
    expect(ledger.apply(third, { own: false, attester: third.attester })).toBe(false)
    const c1 = signMessage(members[3], { t: 'commit', from: accused, round, commitment: randomBytesOf(32) })
    const c2 = signMessage(members[3], { t: 'commit', from: accused, round, commitment: randomBytesOf(32) })
    ledger.apply(verifyEvidence(buildEvidence('equivocate', accused, header, [c1, c2]).bytes), { own: false })
    expect(ledger.trust(accused)).toBe(0)
    expect(ledger.isExcluded(accused)).toBe(true)
    expect(ledger.eligible(members.map(m => m.peerId))).not.toContain(accused)
    ledger.reward(accused)
    expect(ledger.trust(accused)).toBe(0)
    expect(ledger.report().threshold).toBe(EXCLUSION_THRESHOLD)
    expect(ledger.slashesOf(accused).map(s => s.reason)).toEqual(['withhold', 'equivocate'])
  })
})
