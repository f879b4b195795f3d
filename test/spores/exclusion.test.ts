// Certified exclusion: an `exclusion` entry carries the accused's own signed proof of a fault
// that excludes at once, so anyone may write it and nobody can forge one against an honest
// member. An epoch holding it leaves the accused out of the next candidates (as long as 3f+1
// remain), never drops it, and no one can replace it.
import { describe, it, expect } from 'vitest'
import { signEntry, epochViolation, nextCandidates, mayWrite, mayOverride, type SignedEntry, type PreviousEpoch } from '../../spores/index.ts'
import { buildEvidence, signMessage, roundIdOf, commitmentOf, inputDigestOf, type EpochBody, type RoundHeader } from '../../consensus/index.ts'
import { randomBytesOf } from '../../crypto/index.ts'
import { identity, networkRoot } from './fixtures.ts'

const WINDOW = 60_000
const root = networkRoot()
const members = Array.from({ length: 6 }, () => identity())
const ids = members.map(m => m.peerId).sort()
const [accused, honestMember, writer] = members
const authority = { rootPeerId: root.signer.peerId, committee: () => new Set(ids) }

function header (): RoundHeader {
  return { op: 'epoch', key: 'epoch:9', seed: new Uint8Array(32), inputDigest: inputDigestOf(new Uint8Array([1])), committee: ids.slice(0, 4).includes(accused.peerId) ? ids.slice(0, 4) : [accused.peerId, ...ids.slice(0, 3)].sort(), attempt: 0, f: 1 }
}

/** Two different signed commits of `who` in one round: what an equivocator sends. */
function equivocation (who = accused): Uint8Array {
  const h = header()
  const round = roundIdOf(h)
  const commit = (): ReturnType<typeof signMessage> => signMessage(who, { t: 'commit', from: who.peerId, round, commitment: commitmentOf(randomBytesOf(32), randomBytesOf(32), who.peerId, round) })
  return buildEvidence('equivocate', who.peerId, h, [commit(), commit()]).bytes
}

function exclusion (key: string, evidence: Uint8Array, by = writer, seq = 1): SignedEntry {
  return signEntry(by, { type: 'exclusion', key, value: { evidence }, seq, issuedAt: 10_500 })
}

describe('exclusion entries', () => {
  it('are written by anyone with the accused\'s own proof, and by no one without it', () => {
    expect(mayWrite(exclusion(accused.peerId, equivocation()), authority)).toBe(true)
    // the proof names another peer than the key: a member framed with someone else's fault
    expect(mayWrite(exclusion(honestMember.peerId, equivocation()), authority)).toBe(false)
    // an "equivocation" whose two commits are the same message proves nothing
    const h = header()
    const round = roundIdOf(h)
    const one = signMessage(accused, { t: 'commit', from: accused.peerId, round, commitment: commitmentOf(new Uint8Array(32), new Uint8Array(32), accused.peerId, round) })
    expect(() => buildEvidence('equivocate', accused.peerId, h, [one, one])).not.toThrow()
    expect(mayWrite(exclusion(accused.peerId, buildEvidence('equivocate', accused.peerId, h, [one, one]).bytes), authority)).toBe(false)
    // one of the two commits is the writer's own: not the accused's signatures
    const forged = signMessage(writer, { t: 'commit', from: writer.peerId, round, commitment: new Uint8Array(32) })
    expect(mayWrite(exclusion(accused.peerId, buildEvidence('equivocate', accused.peerId, h, [forged, one]).bytes), authority)).toBe(false)
    // a lesser fault (a bad proposal) lowers trust where it is seen but does not exclude
    const proposal = signMessage(accused, { t: 'proposal', from: accused.peerId, header: h, input: new Uint8Array([1]), polka: null })
    expect(mayWrite(exclusion(accused.peerId, buildEvidence('bad-proposal', accused.peerId, h, [proposal]).bytes), authority)).toBe(false)
    expect(mayWrite(exclusion(accused.peerId, new Uint8Array([1, 2, 3])), authority)).toBe(false)
  })

  it('take the accused out of the next candidates, but never below 3f+1', () => {
    const previous: PreviousEpoch = { issuedAt: 10_000, candidates: ids, entries: [] }
    const entries = [exclusion(accused.peerId, equivocation())]
    expect(nextCandidates(previous, entries, 4)).toEqual(ids.filter(id => id !== accused.peerId))
    // with just 3f+1 candidates, the accused stays as one of the f faults: the epochs go on
    const few: PreviousEpoch = { ...previous, candidates: ids.slice(0, 4).includes(accused.peerId) ? ids.slice(0, 4) : [accused.peerId, ...ids.slice(0, 3)].sort() }
    expect(nextCandidates(few, entries, 4)).toEqual(few.candidates)
  })

  it('make an epoch that keeps the accused a candidate, drops the exclusion or replaces it break the rules', () => {
    const ctx = { rootPeerId: root.signer.peerId, windowMs: WINDOW, minCandidates: 4 }
    const ex = exclusion(accused.peerId, equivocation())
    const previous: PreviousEpoch = { issuedAt: 10_000, candidates: ids, entries: [] }
    const body = (prev: PreviousEpoch, entries: SignedEntry[], candidates: string[]): EpochBody => ({ epoch: 5, prev: new Uint8Array(32), issuedAt: 11_000, entries: entries.map(e => e.bytes), candidates })
    expect(epochViolation(body(previous, [ex], nextCandidates(previous, [ex], 4)), previous, ctx)).toBeUndefined()
    expect(epochViolation(body(previous, [ex], ids), previous, ctx)).toMatch(/candidates/)
    const after: PreviousEpoch = { issuedAt: 11_000, candidates: nextCandidates(previous, [ex], 4), entries: [ex] }
    expect(epochViolation({ ...body(after, [], [...after.candidates]), issuedAt: 12_000 }, after, ctx)).toMatch(/drops exclusion\//)
    // the accused cannot come back as a sclerotium while the exclusion stands
    expect(nextCandidates(after, [ex], 4)).not.toContain(accused.peerId)
    // nobody owns an exclusion: no newer version overrides what an epoch holds
    expect(mayOverride(exclusion(accused.peerId, equivocation(), accused, 2))).toBe(false)
  })
})
