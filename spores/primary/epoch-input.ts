// What the BFT engine needs from the spores to produce primary epochs, without either side
// importing the other: the proposer's entries, the deterministic header build every member
// repeats, reading a header it did not build, and the sink that stores a certified epoch.
import { sha256 } from '../../crypto/index.ts'
import { decodeEntry, verifyEntrySignature, entryId, compareVersions, type SignedEntry } from '../entry/entry.ts'
import { ownerOf } from '../entry/authority.ts'
import { ENTRY_CODECS } from '../entry/types.ts'
import { EpochRejectedError } from '../errors.ts'
import type { TierStore } from '../store/tier-store.ts'
import type { SporeLimits } from '../limits.ts'
import { buildHeader, parseHeader, encodeEpoch } from './epoch.ts'
import type { EpochBody, BuiltEpoch, EpochHeaderFacts } from '../../consensus/index.ts'
import type { PrimarySpore } from './primary-spore.ts'

// The epoch header types are the consensus engine's (one declaration, in consensus/).
export type { EpochBody as EpochBodyInput, BuiltEpoch as BuiltEpochHeader, EpochHeaderFacts } from '../../consensus/index.ts'

export class EpochInput {
  private readonly network: string
  private readonly primary: PrimarySpore
  private readonly primaryStore: TierStore
  private readonly latent: TierStore
  private readonly limits: SporeLimits
  private readonly clock: () => number

  constructor (options: { network: string, primary: PrimarySpore, primaryStore: TierStore, latent: TierStore, limits: SporeLimits, clock: () => number }) {
    this.network = options.network
    this.primary = options.primary
    this.primaryStore = options.primaryStore
    this.latent = options.latent
    this.limits = options.limits
    this.clock = options.clock
  }

  /**
   * The next epoch's entries as this node sees them: the current primary, overridden by latent
   * versions its owners signed later (the merge rule), without expired or out-of-window data.
   */
  async entries (signal?: AbortSignal): Promise<Uint8Array[]> {
    const now = this.clock()
    const chosen = new Map<string, SignedEntry>()
    for await (const e of this.primaryStore.entries()) chosen.set(entryId(e.type, e.key), e)
    for await (const e of this.latent.entries()) {
      signal?.throwIfAborted()
      const id = entryId(e.type, e.key)
      const held = chosen.get(id)
      if (held === undefined || (compareVersions(e, held) > 0 && e.seq > held.seq && ownerOf(e) === e.origin)) chosen.set(id, e)
    }
    const out: Uint8Array[] = []
    for (const e of chosen.values()) {
      if (e.expiresAt !== undefined && e.expiresAt <= now) continue
      if (ENTRY_CODECS[e.type].temporal && e.issuedAt < now - this.limits.windowMs) continue
      out.push(e.bytes)
    }
    return out
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
  async accept (epoch: { headerBytes: Uint8Array, certificate: Uint8Array, entries?: Uint8Array[] }): Promise<void> {
    if (epoch.entries === undefined) throw new EpochRejectedError('a certified epoch needs its entries to be stored')
    await this.primary.accept(encodeEpoch(epoch.headerBytes, epoch.certificate, epoch.entries.map(b => decodeEntry(b))))
  }

  /** The latest certified epoch, as the engine's chain anchor. */
  async anchor (): Promise<{ headerBytes: Uint8Array, certificate: Uint8Array, entries: Uint8Array[] } | undefined> {
    const latest = await this.primary.latestEpoch()
    return latest === undefined ? undefined : { headerBytes: latest.headerBytes, certificate: latest.certificate, entries: latest.entries.map(e => e.bytes) }
  }
}
