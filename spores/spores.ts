// The node's spores, assembled: one database, the three tiers, validation-first merging,
// the seed file, and (once the libp2p host exists) gossip, sync and epoch serving.
import type { Level } from 'level'
import type { PeerId } from '@libp2p/interface'
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
import { PrimaryEpochService } from './primary/epoch-service.ts'
import { EpochInput } from './primary/epoch-input.ts'
import { SeedSpore, type ConfirmNode, type SeedImportReport } from './seed/seed-spore.ts'
import type { SeedNode } from './seed/seed-file.ts'
import { LatentGossip, type GossipStats } from './latent/latent-gossip.ts'
import { AntiEntropySync, type SyncStats } from './latent/anti-entropy-sync.ts'
import { SelfPublisher, type SelfSummary } from './latent/self-publisher.ts'
import { sporeProtocols, type SporeHost, type SporeNames, type SporePubSub } from './host.ts'

export interface SporesOptions {
  /** Path of the node's level database, or a Level instance the daemon opened. */
  database: string | Level<any, any>
  /** Network id (checked in epochs and seed files). */
  network: string
  /** Public key of the network root (certifies epoch 0, may issue trust entries). */
  rootPublicKey: Uint8Array
  /** This node's Ed25519 identity: it signs its own entries and exported seed files. */
  signer: Signer
  limits?: { maxEntries?: Partial<Record<EntryType, number>>, windowMs?: number, maxClockSkewMs?: number }
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
}

export interface SporeStats {
  tiers: Record<TierName, Record<EntryType, { count: number, limit: number, rejections: Partial<Record<RejectionReason, number>> }>>
  /** Rejections of input too broken to have a type (oversized, malformed, schema), per tier. */
  undecodable: Record<TierName, Partial<Record<RejectionReason, number>>>
  primaryEpoch: number | null
  gossip?: GossipStats
  sync?: SyncStats
}

export interface SporesNetworkOptions {
  host: SporeHost
  pubsub: SporePubSub
  names: SporeNames
  /** Own-entry publication: the node's current summary and how often (default 60 s). */
  summary?: () => SelfSummary | Promise<SelfSummary>
  publishIntervalMs?: number
  /** A peer seen connecting/disconnecting more often than this within the window is condensed (default 8). */
  intermittentAfter?: number
  /** Anti-entropy with one random connected peer every this many ms (default 60 s; 0 = never). */
  syncIntervalMs?: number
}

/** The networked half: gossip, anti-entropy sync, epoch serving and own-entry publication. */
export class SporesNetwork {
  readonly gossip: LatentGossip
  readonly sync: AntiEntropySync
  readonly epochs: PrimaryEpochService
  /** Publishes this node's own entries; `recordConnection` logs connects and disconnects. */
  readonly publisher: SelfPublisher
  private readonly host: SporeHost
  private readonly syncIntervalMs: number
  private readonly log: SporeLogger
  private timer: ReturnType<typeof setInterval> | undefined
  private pruneTimer: ReturnType<typeof setInterval> | undefined
  private readonly spores: Spores

  constructor (spores: Spores, options: SporesNetworkOptions) {
    const ids = sporeProtocols(options.names)
    this.host = options.host
    this.log = spores.log
    this.gossip = new LatentGossip({ pubsub: options.pubsub, topic: ids.gossip, merger: spores.merger, log: spores.log })
    this.sync = new AntiEntropySync({ host: options.host, protocol: ids.sync, store: spores.tiers.latent, merger: spores.merger, log: spores.log })
    this.epochs = new PrimaryEpochService({ host: options.host, protocol: ids.primary, primary: spores.primary, log: spores.log })
    this.publisher = new SelfPublisher({ signer: spores.signer, summary: options.summary, merger: spores.merger, latent: spores.tiers.latent, publish: async (e) => await this.gossip.publish(e), intervalMs: options.publishIntervalMs, clock: spores.clock, log: spores.log, connections: { windowMs: spores.limits.windowMs, intermittentAfter: options.intermittentAfter } })
    this.spores = spores
    this.syncIntervalMs = options.syncIntervalMs ?? 60_000
  }

  async start (): Promise<void> {
    this.gossip.start()
    await this.sync.start()
    await this.epochs.start()
    this.publisher.start()
    // temporal data leaves the window even when nothing new arrives
    this.pruneTimer = setInterval(() => {
      void this.spores.prune().catch(err => this.log.warn({ err: (err as Error).message }, 'pruning spores failed'))
    }, Math.min(10 * 60_000, Math.max(1000, this.spores.limits.windowMs / 24)))
    this.pruneTimer.unref?.()
    if (this.syncIntervalMs > 0) {
      this.timer = setInterval(() => { void this.syncWithRandomPeer() }, this.syncIntervalMs)
      this.timer.unref?.()
    }
  }

  async stop (): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    if (this.pruneTimer !== undefined) clearInterval(this.pruneTimer)
    this.publisher.stop()
    this.gossip.stop()
    await this.sync.stop()
    await this.epochs.stop()
  }

  /** One anti-entropy round and one epoch fetch with a random connected peer. */
  async syncWithRandomPeer (signal?: AbortSignal): Promise<void> {
    const peers = this.host.getPeers()
    if (peers.length === 0) return
    const peer: PeerId = peers[Math.floor(Math.random() * peers.length)]
    try {
      await this.sync.syncWith(peer, signal)
    } catch (err) {
      this.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'anti-entropy sync failed')
    }
    try {
      await this.epochs.fetchFrom(peer, signal)
    } catch (err) {
      this.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'epoch fetch failed')
    }
  }
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
    this.primary = new PrimarySpore({ db, store: this.tiers.primary, network: options.network, verifier: options.epochVerifier ?? committeeCertificateVerifier({ rootPublicKey: options.rootPublicKey }), log: this.log })
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
    this.epochInput = new EpochInput({ network: options.network, primary: this.primary, primaryStore: this.tiers.primary, latent: this.tiers.latent, limits: this.limits, clock: this.clock })
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
