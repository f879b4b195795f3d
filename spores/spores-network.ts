// The networked half of the spores, started once the libp2p host exists: latent gossip,
// anti-entropy sync, primary epoch serving, own-entry publication and periodic pruning.
import type { PeerId } from '@libp2p/interface'
import type { Spores } from './spores.ts'
import { PrimaryEpochService } from './primary/epoch-service.ts'
import { LatentGossip } from './latent/latent-gossip.ts'
import { AntiEntropySync } from './latent/anti-entropy-sync.ts'
import { SelfPublisher, type SelfSummary } from './latent/self-publisher.ts'
import { sporeProtocols, type SporeHost, type SporeNames, type SporePubSub } from './host.ts'
import type { SporeLogger } from './logger.ts'

/** A peer that reconnects within this time is not synced with again. */
const MIN_RESYNC_MS = 10_000

export interface SporesNetworkOptions {
  host: SporeHost
  pubsub: SporePubSub
  names: SporeNames
  /** Own-entry publication: the node's current summary and how often (default 60 s). */
  summary?: () => SelfSummary | Promise<SelfSummary>
  publishIntervalMs?: number
  /** An unchanged own entry is re-published after this long (default: SelfPublisher's, 10 intervals). */
  refreshMs?: number
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
  private readonly lastSync = new Map<string, number>()

  constructor (spores: Spores, options: SporesNetworkOptions) {
    const ids = sporeProtocols(options.names)
    this.host = options.host
    this.log = spores.log
    this.gossip = new LatentGossip({ pubsub: options.pubsub, topic: ids.gossip, merger: spores.merger, log: spores.log })
    this.sync = new AntiEntropySync({ host: options.host, protocol: ids.sync, store: spores.tiers.latent, merger: spores.merger, log: spores.log })
    this.epochs = new PrimaryEpochService({ host: options.host, protocol: ids.primary, primary: spores.primary, log: spores.log })
    this.publisher = new SelfPublisher({ signer: spores.signer, summary: options.summary, merger: spores.merger, latent: spores.tiers.latent, publish: async (e) => await this.gossip.publish(e), intervalMs: options.publishIntervalMs, refreshMs: options.refreshMs, clock: spores.clock, log: spores.log, connections: { windowMs: spores.limits.windowMs, intermittentAfter: options.intermittentAfter }, nodeLifetimeMs: spores.limits.windowMs })
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
    // the host may already be stopped (shutdown order is the daemon's): stop what can be stopped
    for (const step of [() => this.gossip.stop(), async () => await this.sync.stop(), async () => await this.epochs.stop()]) {
      try {
        await step()
      } catch (err) {
        this.log.debug({ err: (err as Error).message }, 'stopping spores networking')
      }
    }
  }

  /**
   * The daemon calls this on each new connection: it logs the connection and reconciles with
   * the peer right away, so a node that was apart catches up without waiting for the timer.
   * Only links the topology keeps are logged (`record`): a dial on demand is not a link, and
   * logging every one would grow the records with N². One anti-entropy session carries entries
   * both ways, so only one side of a link needs to start it (`sync`: the daemon lets the side
   * that dialled do it); the peer's epochs are fetched either way.
   */
  async peerConnected (peer: PeerId, signal?: AbortSignal, record = true, sync = true): Promise<void> {
    const id = peer.toString()
    if (record) await this.publisher.recordConnection(id, 'connect').catch(err => this.log.debug({ err: (err as Error).message }, 'connection record failed'))
    const now = this.spores.clock()
    if (now - (this.lastSync.get(id) ?? -Infinity) < MIN_RESYNC_MS) return
    this.lastSync.set(id, now)
    if (this.lastSync.size > 4096) this.lastSync.delete(this.lastSync.keys().next().value as string)
    await this.reconcile(peer, signal, sync)
  }

  /** The daemon calls this on each closed connection. */
  async peerDisconnected (peer: PeerId, record = true): Promise<void> {
    if (!record) return
    await this.publisher.recordConnection(peer.toString(), 'disconnect').catch(err => this.log.debug({ err: (err as Error).message }, 'connection record failed'))
  }

  /** One anti-entropy round and one epoch fetch with a random connected peer. */
  async syncWithRandomPeer (signal?: AbortSignal): Promise<void> {
    const peers = this.host.getPeers()
    if (peers.length === 0) return
    await this.reconcile(peers[Math.floor(Math.random() * peers.length)], signal)
  }

  private async reconcile (peer: PeerId, signal?: AbortSignal, sync = true): Promise<void> {
    try {
      if (sync) await this.sync.syncWith(peer, signal)
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
