// The node's spores, assembled: one database, the three tiers, validation-first merging,
// the seed file, and (once the libp2p host exists) gossip, sync and epoch serving.
import type { Level } from 'level'
import { peerIdOfPublicKey } from '../crypto/index.ts'
import { viewOf, type EntryView, type SignedEntry, type Signer } from './entry/entry.ts'
import { ENTRY_TYPES, type EntryType } from './entry/types.ts'
import type { TrustAuthority } from './entry/authority.ts'
import { SporeDatabase } from './store/spore-database.ts'
import { TierStore } from './store/tier-store.ts'
import { TIERS, type TierName } from './store/buckets.ts'
import { SporeMerger, type MergeOutcome, type MergeTier } from './merge/spore-merger.ts'
import { RejectionCounts, type RejectionReason, type RejectionSink } from './merge/rejection.ts'
import { limitsWith, type SporeLimits } from './limits.ts'
import { silentLogger, type SporeLogger } from './logger.ts'
import { PrimarySpore } from './primary/primary-spore.ts'
import { committeeCertificateVerifier, type EpochCertificateVerifier } from './primary/certificate.ts'
import { EpochInput } from './primary/epoch-input.ts'
import { SeedSpore, type ConfirmNode, type SeedImportReport } from './seed/seed-spore.ts'
import type { SeedNode } from './seed/seed-file.ts'
import type { GossipStats } from './latent/latent-gossip.ts'
import type { SyncStats } from './latent/anti-entropy-sync.ts'
import { SporesNetwork, type SporesNetworkOptions } from './spores-network.ts'

export interface SporesOptions {
  /** Path of the node's level database, or a Level instance the daemon opened. */
  database: string | Level<any, any>
  /** Network id (checked in epochs and seed files). */
  network: string
  /** Public key of the network root (certifies epoch 0, may issue trust entries). */
  rootPublicKey: Uint8Array
  /** This node's Ed25519 identity: it signs its own entries and exported seed files. */
  signer: Signer
  limits?: { maxEntries?: Partial<Record<EntryType, number>>, originShare?: number, windowMs?: number, maxClockSkewMs?: number, minCandidates?: number }
  clock?: () => number
  log?: SporeLogger
  /** Extra sink for rejection counts (the daemon's Prometheus counter); in-memory counts are always kept. */
  rejections?: RejectionSink
  /** Replaces the default epoch certificate check (the BFT engine's quorum certificates). */
  epochVerifier?: EpochCertificateVerifier
  verifyTrustCertificate?: TrustAuthority['verifyTrustCertificate']
  /** When given, entries from non-members are rejected. */
  isMember?: (peerId: string) => boolean
  /** This node's membership chain (carried in seed files) and the check of another's. */
  membership?: () => Uint8Array
  checkMembership?: (membership: Uint8Array, peerId: string, network: string) => boolean
  /** How many epochs' certified headers the primary tier keeps (default a week at the default interval). */
  headerRetention?: number
  /** The certified epoch the invite this node joined with vouched for: where its chain may start. */
  epochAnchor?: { epoch: number, digest: Uint8Array }
}

export interface SporeStats {
  tiers: Record<TierName, Record<EntryType, { count: number, limit: number, rejections: Partial<Record<RejectionReason, number>> }>>
  /** Rejections of input too broken to have a type (oversized, malformed, schema), per tier. */
  undecodable: Record<TierName, Partial<Record<RejectionReason, number>>>
  primaryEpoch: number | null
  gossip?: GossipStats
  sync?: SyncStats
}

export class Spores {
  readonly db: SporeDatabase
  readonly tiers: Record<TierName, TierStore>
  readonly primary: PrimarySpore
  readonly merger: SporeMerger
  readonly seed: SeedSpore
  /** The BFT engine's view of the spores: its EpochInputSource, EpochSink and chain anchor. */
  readonly epochInput: EpochInput
  readonly rejections = new RejectionCounts()
  readonly limits: SporeLimits
  readonly signer: Signer
  readonly clock: () => number
  readonly log: SporeLogger
  /** Records found undecodable (and removed) when the database was opened; a healthy store has none. */
  droppedAtOpen = 0
  private networked: SporesNetwork | undefined

  private constructor (db: SporeDatabase, options: SporesOptions) {
    this.db = db
    this.signer = options.signer
    this.clock = options.clock ?? Date.now
    this.log = options.log ?? silentLogger
    this.limits = limitsWith(options.limits)
    this.tiers = { primary: new TierStore(db, 'primary'), seed: new TierStore(db, 'seed'), latent: new TierStore(db, 'latent') }
    this.primary = new PrimarySpore({ db, store: this.tiers.primary, network: options.network, verifier: options.epochVerifier ?? committeeCertificateVerifier({ rootPublicKey: options.rootPublicKey }), log: this.log, headerRetention: options.headerRetention, ...(options.epochAnchor === undefined ? {} : { anchor: options.epochAnchor }) })
    const extra = options.rejections
    const counts = this.rejections
    this.merger = new SporeMerger({
      db,
      tiers: this.tiers,
      trust: { rootPeerId: peerIdOfPublicKey(options.rootPublicKey), committee: () => this.primary.committee(), verifyTrustCertificate: options.verifyTrustCertificate },
      limits: this.limits,
      clock: this.clock,
      sink: { rejected (tier, type, reason) { counts.rejected(tier, type, reason); extra?.rejected(tier, type, reason) } },
      log: this.log,
      isMember: options.isMember
    })
    this.epochInput = new EpochInput({ network: options.network, primary: this.primary, latent: this.tiers.latent, limits: this.limits, rootPeerId: peerIdOfPublicKey(options.rootPublicKey) })
    this.seed = new SeedSpore({ db, store: this.tiers.seed, latent: this.tiers.latent, primary: this.primary, merger: this.merger, signer: this.signer, network: options.network, membership: options.membership ?? (() => new Uint8Array(0)), checkMembership: options.checkMembership, clock: this.clock, log: this.log })
  }

  static async open (options: SporesOptions): Promise<Spores> {
    const db = await SporeDatabase.open(options.database)
    const spores = new Spores(db, options)
    for (const tier of TIERS) spores.droppedAtOpen += (await spores.tiers[tier].load()).dropped
    await spores.primary.load()
    spores.primary.onEpoch(async () => {
      try {
        await spores.merger.dropOverridden('seed')
        await spores.merger.dropOverridden('latent')
      } catch (err) {
        spores.log.warn({ err: (err as Error).message }, 'dropping overridden entries failed')
      }
    })
    return spores
  }

  /** Starts gossip, sync, epoch serving and (with `summary`) own-entry publication on a libp2p host. */
  async attach (options: SporesNetworkOptions): Promise<SporesNetwork> {
    if (this.networked !== undefined) await this.networked.stop()
    this.networked = new SporesNetwork(this, options)
    await this.networked.start()
    return this.networked
  }

  /** Merges untrusted entries (bytes) or entries built here into the seed or latent tier. */
  async merge (tier: MergeTier, inputs: Array<Uint8Array | SignedEntry>): Promise<MergeOutcome[]> {
    return await this.merger.merge(tier, inputs)
  }

  /** `mycelium spores ls`: entries of one tier (default latent), optionally of one type. */
  async ls (options: { tier?: TierName, type?: EntryType } = {}): Promise<EntryView[]> {
    const out: EntryView[] = []
    for await (const e of this.tiers[options.tier ?? 'latent'].entries(options.type)) out.push(viewOf(e))
    return out
  }

  /** `mycelium spores stats`: per tier and type, counts, limits and rejections by reason. */
  stats (): SporeStats {
    const tiers = {} as SporeStats['tiers']
    for (const tier of TIERS) {
      const byType = {} as SporeStats['tiers'][TierName]
      for (const type of ENTRY_TYPES) byType[type] = { count: this.tiers[tier].count(type), limit: this.limits.maxEntries[type], rejections: this.rejections.of(tier, type) }
      tiers[tier] = byType
    }
    const undecodable = {} as SporeStats['undecodable']
    for (const tier of TIERS) undecodable[tier] = this.rejections.of(tier, 'unknown')
    const stats: SporeStats = { tiers, undecodable, primaryEpoch: this.primary.latest()?.header.epoch ?? null }
    if (this.networked !== undefined) {
      stats.gossip = { ...this.networked.gossip.stats }
      stats.sync = { ...this.networked.sync.stats }
    }
    return stats
  }

  async exportSeed (file: string, options: { nodes?: SeedNode[] } = {}): Promise<{ nodes: number, entries: number }> {
    return await this.seed.export(file, options)
  }

  async importSeed (file: string, confirm: ConfirmNode, options: { signal?: AbortSignal, confirmTimeoutMs?: number } = {}): Promise<SeedImportReport> {
    return await this.seed.import(file, confirm, options)
  }

  /** Drops expired and out-of-window entries from the seed and latent tiers. */
  async prune (): Promise<number> {
    return await this.merger.prune('latent') + await this.merger.prune('seed')
  }

  async close (): Promise<void> {
    await this.networked?.stop()
    this.networked = undefined
    await this.db.close()
  }
}
