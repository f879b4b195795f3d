// What a proposed epoch may contain, judged only from the certified epoch before it (so every
// member reaches the same verdict, and a proposer that breaks a rule is slashed with its own
// signed proposal as the evidence):
//   - every entry decodes, is signed by its origin, and its origin may write its key (the
//     writer rules of authority.ts, with the previous epoch's committee for trust entries);
//   - one version per key, and never an older one than the previous epoch holds (seq is
//     monotonic per key; the same seq must be the same version);
//   - nothing of the previous epoch is dropped unless it expired or left the window by the
//     epoch's issuedAt, or a newer version of its key replaces it;
//   - issuedAt is after the previous epoch's;
//   - the candidates for the next committee are exactly nextCandidates() of the entries;
//   - an exclusion entry carries the accused's own proof of a Byzantine fault (authority.ts).
// The proposer's own clock matters only to members that judge issuedAt against theirs
// (EpochInput.evaluate refuses a far-off issuedAt but does not slash: clocks differ).
import { decodeEntry, verifyEntrySignature, entryId, type SignedEntry } from '../entry/entry.ts'
import { mayWrite } from '../entry/authority.ts'
import { ENTRY_CODECS } from '../entry/types.ts'
import type { EpochBody } from '../../consensus/index.ts'

const SCLEROTIUM = 'sclerotium'
const HYPHAE = 'hyphae'
const MAX_CANDIDATES = 64

export interface PreviousEpoch {
  issuedAt: number
  candidates: readonly string[]
  /** The previous epoch's entries (decoded). */
  entries: readonly SignedEntry[]
}

export interface EpochRulesContext {
  rootPeerId?: string
  /** Entries that are temporal leave the epoch once their issuedAt is older than this. */
  windowMs: number
  /** Exclusions leave at least this many candidates (3f+1). */
  minCandidates?: number
}

/** An entry still belongs in an epoch issued at `at`. */
export function liveAt (e: SignedEntry, at: number, windowMs: number): boolean {
  if (e.expiresAt !== undefined && e.expiresAt <= at) return false
  return !(ENTRY_CODECS[e.type].temporal && e.issuedAt < at - windowMs)
}

/**
 * The candidates of the committee after this epoch: the previous candidates and every peer
 * whose own `node` entry says sclerotium and was already in the previous epoch (one epoch of
 * tenure: a newcomer cannot enter the committee in the epoch it appears), without peers whose
 * node entry now says hyphae (a client). Sorted, at most 64.
 * Peers the epoch holds an exclusion entry for are out (in peer-id order, as long as at least
 * `minCandidates` remain, so that exclusions never stop the epochs): the entry is the accused's
 * own signed proof of equivocation or of signing conflicting certificates, which every member
 * re-checks, and certifying the epoch certifies the exclusion. It stays in every later epoch. Trust entries do not remove
 * anyone: one is a single member's signed opinion, so a Byzantine committee member could write
 * honest peers out of the committees (and below 3f+1) with them; a member slashed for a lesser
 * fault (a dissent, a bad proposal) stays a candidate, one of the f faults the committees
 * tolerate, and is only left out locally by the nodes whose trust in it fell.
 */
export function nextCandidates (previous: PreviousEpoch, entries: readonly SignedEntry[], minCandidates = 0): string[] {
  const before = new Set(previous.entries.filter(e => e.type === 'node').map(e => e.key))
  const set = new Set(previous.candidates)
  for (const e of entries) {
    if (e.type !== 'node') continue
    const role = (e as SignedEntry<'node'>).value.role
    if (role === SCLEROTIUM && before.has(e.key)) set.add(e.key)
    if (role === HYPHAE) set.delete(e.key)
  }
  const excluded = [...new Set(entries.filter(e => e.type === 'exclusion' && set.has(e.key)).map(e => e.key))].sort()
  for (const peer of excluded) {
    if (set.size <= minCandidates) break
    set.delete(peer)
  }
  return [...set].sort().slice(0, MAX_CANDIDATES)
}

/** Decodes a body's entries; throws on bytes that are not a validly signed entry. */
export function decodeEpochEntries (body: EpochBody): SignedEntry[] {
  return body.entries.map((bytes, i) => {
    const e = decodeEntry(bytes)
    if (!verifyEntrySignature(e)) throw new Error(`entry ${i} has a bad signature`)
    return e
  })
}

/** What in `body` breaks the rules against the previous epoch, or undefined. */
export function epochViolation (body: EpochBody, previous: PreviousEpoch, ctx: EpochRulesContext): string | undefined {
  let entries: SignedEntry[]
  try {
    entries = decodeEpochEntries(body)
  } catch (err) {
    return `epoch ${body.epoch}: ${(err as Error).message}`
  }
  if (body.issuedAt <= previous.issuedAt) return `epoch ${body.epoch}: issuedAt is not after the previous epoch`
  const committee = new Set(previous.candidates)
  const authority = { rootPeerId: ctx.rootPeerId, committee: () => committee }
  const byId = new Map<string, SignedEntry>()
  for (const e of entries) {
    const id = entryId(e.type, e.key)
    if (byId.has(id)) return `epoch ${body.epoch}: two versions of ${id.slice(0, 120)}`
    if (!mayWrite(e, authority)) return `epoch ${body.epoch}: ${e.origin} may not write ${id.slice(0, 120)}`
    if (!liveAt(e, body.issuedAt, ctx.windowMs)) return `epoch ${body.epoch}: ${id.slice(0, 120)} expired or left the window`
    byId.set(id, e)
  }
  for (const old of previous.entries) {
    const id = entryId(old.type, old.key)
    const now = byId.get(id)
    if (now === undefined) {
      if (liveAt(old, body.issuedAt, ctx.windowMs)) return `epoch ${body.epoch}: drops ${id.slice(0, 120)} of the previous epoch`
      continue
    }
    if (now.seq < old.seq) return `epoch ${body.epoch}: ${id.slice(0, 120)} goes back from seq ${old.seq} to ${now.seq}`
    if (now.seq === old.seq && !sameBytes(now.bytes, old.bytes)) return `epoch ${body.epoch}: ${id.slice(0, 120)} has another version with the same seq`
  }
  const expected = nextCandidates(previous, entries, ctx.minCandidates)
  if (expected.length !== body.candidates.length || expected.some((c, i) => c !== body.candidates[i])) return `epoch ${body.epoch}: the candidates are not the ones the entries give`
  return undefined
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
