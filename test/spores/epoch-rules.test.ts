// The content rules every member checks on a proposed epoch, each attack of a Byzantine
// proposer against them: dropped entries, an entry written for someone else, a key sent back
// to an older seq, two versions with one seq, a captured candidate list, an issuedAt that
// does not move forward, and the candidate rule itself (tenure, hyphae, distrust).
import { describe, it, expect } from 'vitest'
import { signEntry, epochViolation, nextCandidates, type SignedEntry, type PreviousEpoch } from '../../spores/index.ts'
import type { EpochBody } from '../../consensus/index.ts'
import { identity, nodeValue, healthValue, entry, networkRoot } from './fixtures.ts'

const WINDOW = 60_000
const root = networkRoot()
const committee = [identity(), identity(), identity(), identity()]
const ids = committee.map(c => c.peerId).sort()
const ctx = { rootPeerId: root.signer.peerId, windowMs: WINDOW }
const sclerotium = (n: number): ReturnType<typeof nodeValue> => ({ ...nodeValue(n), role: 'sclerotium' })

function previousWith (entries: SignedEntry[]): PreviousEpoch {
  return { issuedAt: 10_000, candidates: ids, entries }
}

function bodyOf (previous: PreviousEpoch, entries: SignedEntry[], over: Partial<EpochBody> = {}): EpochBody {
  return { epoch: 5, prev: new Uint8Array(32), issuedAt: 11_000, entries: entries.map(e => e.bytes), candidates: nextCandidates(previous, entries), ...over }
}

describe('epoch content rules', () => {
  const a = committee[0]
  const older = entry(a, 'node', nodeValue(1), { seq: 3, issuedAt: 9000 })
  const health = entry(committee[1], 'health', healthValue(), { seq: 1, issuedAt: 9500 })
  const previous = previousWith([older, health])

  it('accept a body that carries the previous epoch forward with newer versions', () => {
    const newer = entry(a, 'node', nodeValue(2), { seq: 4, issuedAt: 10_500 })
    expect(epochViolation(bodyOf(previous, [newer, health]), previous, ctx)).toBeUndefined()
  })

  it('refuse a body that drops entries that are still live', () => {
    expect(epochViolation(bodyOf(previous, [health]), previous, ctx)).toMatch(/drops node\//)
    // a temporal entry that left the window by the epoch's issuedAt may go
    expect(epochViolation(bodyOf(previous, [older], { issuedAt: 9500 + WINDOW + 1 }), previous, ctx)).toBeUndefined()
  })

  it('refuse an entry written by someone else than its owner', () => {
    const forged = signEntry(committee[2], { type: 'node', key: a.peerId, value: nodeValue(9), seq: Number.MAX_SAFE_INTEGER, issuedAt: 10_500 })
    expect(epochViolation(bodyOf(previous, [forged, health]), previous, ctx)).toMatch(/may not write node\//)
  })

  it('refuse a key sent back to an older seq, or another version with the same seq', () => {
    const oldest = entry(a, 'node', nodeValue(0), { seq: 2, issuedAt: 8000 })
    expect(epochViolation(bodyOf(previous, [oldest, health]), previous, ctx)).toMatch(/goes back from seq 3 to 2/)
    const twin = entry(a, 'node', nodeValue(7), { seq: 3, issuedAt: 9000 })
    expect(epochViolation(bodyOf(previous, [twin, health]), previous, ctx)).toMatch(/another version with the same seq/)
  })

  it('refuse a candidate list that is not the one the entries give', () => {
    expect(epochViolation(bodyOf(previous, [older, health], { candidates: [a.peerId] }), previous, ctx)).toMatch(/candidates/)
  })

  it('refuse an issuedAt that does not move forward, and two versions of one key', () => {
    expect(epochViolation(bodyOf(previous, [older, health], { issuedAt: 10_000 }), previous, ctx)).toMatch(/issuedAt/)
    const newer = entry(a, 'node', nodeValue(2), { seq: 4, issuedAt: 10_500 })
    expect(epochViolation(bodyOf(previous, [older, newer, health]), previous, ctx)).toMatch(/two versions/)
  })

  it('derive candidates: a sclerotium joins after one epoch of tenure, a hyphae leaves, a trust entry removes no one', () => {
    const newcomer = identity()
    const first = entry(newcomer, 'node', sclerotium(5), { seq: 1, issuedAt: 10_200 })
    // not yet: its node entry was not in the previous epoch
    expect(nextCandidates(previous, [older, health, first])).toEqual(ids)
    const tenured = previousWith([older, health, first])
    const again = entry(newcomer, 'node', sclerotium(5), { seq: 2, issuedAt: 10_800 })
    expect(nextCandidates(tenured, [older, health, again])).toEqual([...ids, newcomer.peerId].sort())
    const client = entry(a, 'node', { ...nodeValue(1), role: 'hyphae' }, { seq: 4, issuedAt: 10_500 })
    expect(nextCandidates(previous, [client, health])).not.toContain(a.peerId)
    // one member's opinion cannot write an honest peer out of the committees
    const slander = signEntry(committee[1], { type: 'trust', key: committee[3].peerId, value: { score: 0, reason: 'slander' }, seq: 1, issuedAt: 10_500 })
    expect(nextCandidates(previous, [older, health, slander])).toContain(committee[3].peerId)
    // a trust entry may be written by a committee member or the root, not by anyone
    const stranger = identity()
    const fake = signEntry(stranger, { type: 'trust', key: committee[3].peerId, value: { score: 0, reason: 'lies' }, seq: 1, issuedAt: 10_500 })
    expect(epochViolation(bodyOf(previous, [older, health, fake]), previous, ctx)).toMatch(/may not write trust\//)
  })
})
