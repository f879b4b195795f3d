// What the BFT engine needs from the spores to produce primary epochs, without either side
// importing the other: the proposer's entries, the content rules every member checks, the deterministic header build every member
// repeats, reading a header it did not build, and the sink that stores a certified epoch.
import { sha256, toHex } from '../../crypto/index.ts'
import { decodeEntry, verifyEntrySignature, entryId, compareVersions, type SignedEntry } from '../entry/entry.ts'
import { mayOverride, mayWrite } from '../entry/authority.ts'
import { epochViolation, nextCandidates, liveAt, type PreviousEpoch, type EpochRulesContext } from './epoch-rules.ts'
import { EpochRejectedError } from '../errors.ts'
import type { SporeLimits } from '../limits.ts'
import { buildHeader, parseHeader, encodeEpoch } from './epoch.ts'
import type { EpochBody, BuiltEpoch, EpochHeaderFacts, PreviousEpochFacts, RetainedHeaders } from '../../consensus/index.ts'
import type { PrimarySpore } from './primary-spore.ts'

// The epoch header types are the consensus engine's (one declaration, in consensus/).
export type { EpochBody as EpochBodyInput, BuiltEpoch as BuiltEpochHeader, EpochHeaderFacts } from '../../consensus/index.ts'

/** Where this node's latent entries come from (the latent tier; the simulator keeps them in memory). */
export interface LatentEntries {
  entries: () => AsyncIterable<SignedEntry>
}

/** Where certified epochs are stored (the primary spore). */
export type EpochStore = Pick<PrimarySpore, 'accept' | 'latestEpoch'>

export class EpochInput {
  private readonly network: string
  private readonly primary: EpochStore
  private readonly latent: LatentEntries
  private readonly limits: SporeLimits
  private readonly rootPeerId: string | undefined
  private decoded: { epoch: number, digest: string, entries: SignedEntry[] } | undefined

  constructor (options: { network: string, primary: EpochStore, latent: LatentEntries, limits: SporeLimits, rootPeerId?: string }) {
    this.network = options.network
    this.primary = options.primary
    this.latent = options.latent
    this.limits = options.limits
    this.rootPeerId = options.rootPeerId
  }

  private rules (): EpochRulesContext {
    return { rootPeerId: this.rootPeerId, windowMs: this.limits.windowMs, minCandidates: this.limits.minCandidates }
  }

  /** The previous epoch with its entries decoded (kept for the latest one: every round reads it). */
  private previousOf (facts: PreviousEpochFacts): PreviousEpoch {
    const digest = toHex(facts.digest)
    if (this.decoded?.epoch !== facts.epoch || this.decoded.digest !== digest) {
      this.decoded = { epoch: facts.epoch, digest, entries: facts.entries.map(b => decodeEntry(b)) }
    }
    return { issuedAt: facts.issuedAt, candidates: facts.candidates, entries: this.decoded.entries }
  }

  /**
   * The next epoch as this node proposes it, valid under epochViolation() by construction: the
   * previous epoch's entries, replaced by latent versions with a higher seq that their writers
   * may write (owners; committee members or the root for trust), without what expired or left
   * the window by `issuedAt`, and the candidates those entries give. At most `changeBytes` of
   * new or changed entries go in; the rest waits for the next epochs.
   */
  async propose (previousFacts: PreviousEpochFacts, issuedAt: number, signal?: AbortSignal, changeBytes = Number.POSITIVE_INFINITY): Promise<{ entries: Uint8Array[], candidates: string[] }> {
    const previous = this.previousOf(previousFacts)
    const committee = new Set(previous.candidates)
    const authority = { rootPeerId: this.rootPeerId, committee: () => committee }
    const chosen = new Map<string, SignedEntry>()
    for (const e of previous.entries) chosen.set(entryId(e.type, e.key), e)
    const certified = new Set(previous.entries)
    let changed = 0
    for await (const e of this.latent.entries()) {
      signal?.throwIfAborted()
      const id = entryId(e.type, e.key)
      const held = chosen.get(id)
      if (held !== undefined && !(e.seq > held.seq && compareVersions(e, held) > 0)) continue
      if (!mayWrite(e, authority) || (held !== undefined && !mayOverride(e))) continue
      if (changed + e.bytes.length > changeBytes) continue
      if (!verifyEntrySignature(e)) continue
      // a second newer version of one key replaces the first: only the last one is carried
      if (held === undefined || certified.has(held)) changed += e.bytes.length
      chosen.set(id, e)
    }
    const entries = [...chosen.values()].filter(e => liveAt(e, issuedAt, this.limits.windowMs))
    return { entries: entries.map(e => e.bytes), candidates: nextCandidates(previous, entries, this.limits.minCandidates) }
  }

  /** What in a proposed body breaks the epoch rules against the previous epoch, or undefined (deterministic). */
  violation (body: EpochBody, previous: PreviousEpochFacts): string | undefined {
    return epochViolation(body, this.previousOf(previous), this.rules())
  }

  /** Deterministic for every member: checks each entry, sorts them and builds the header. */
  build (body: EpochBody): BuiltEpoch {
    const entries = body.entries.map((bytes) => {
      const e = decodeEntry(bytes)
      if (!verifyEntrySignature(e)) throw new EpochRejectedError(`epoch ${body.epoch} input holds an entry with a bad signature`)
      return e
    })
    const seen = new Set<string>()
    for (const e of entries) {
      const id = entryId(e.type, e.key)
      if (seen.has(id)) throw new EpochRejectedError(`epoch ${body.epoch} input holds two versions of ${id.slice(0, 120)}`)
      seen.add(id)
    }
    const built = buildHeader({ network: this.network, epoch: body.epoch, prev: body.prev, entries, committee: body.candidates, issuedAt: body.issuedAt })
    return { digest: built.digest, headerBytes: built.headerBytes, entries: built.entries.map(e => e.bytes) }
  }

  readHeader (headerBytes: Uint8Array): EpochHeaderFacts {
    const h = parseHeader(headerBytes)
    if (h.network !== this.network) throw new EpochRejectedError(`epoch header of network ${h.network.slice(0, 80)}`)
    return { epoch: h.epoch, prev: h.prev, candidates: h.committee, issuedAt: h.issuedAt, digest: sha256(headerBytes) }
  }

  /** Stores a certified epoch in the primary tier (the certificate is checked there). */
  async accept (epoch: { headerBytes: Uint8Array, certificate: Uint8Array, entries?: Uint8Array[] }, between: Array<[Uint8Array, Uint8Array]> = []): Promise<void> {
    if (epoch.entries === undefined) throw new EpochRejectedError('a certified epoch needs its entries to be stored')
    await this.primary.accept(encodeEpoch(epoch.headerBytes, epoch.certificate, epoch.entries.map(b => decodeEntry(b))), between)
  }

  /** The latest certified epoch, as the engine's chain anchor. */
  async anchor (): Promise<{ headerBytes: Uint8Array, certificate: Uint8Array, entries: Uint8Array[] } | undefined> {
    const latest = await this.primary.latestEpoch()
    return latest === undefined ? undefined : { headerBytes: latest.headerBytes, certificate: latest.certificate, entries: latest.entries.map(e => e.bytes) }
  }
}

/** The primary tier's header archive as the BFT engine's catch-up reads and fills it (light sync). */
export function retainedHeadersOf (primary: Pick<PrimarySpore, 'headers' | 'acceptHeaders'>): RetainedHeaders {
  return {
    headers: async (from, to, max) => await primary.headers.range(from, to, max),
    oldest: () => primary.headers.oldest(),
    retention: primary.headers.retention,
    keep: async (pairs) => { await primary.acceptHeaders(pairs) }
  }
}
