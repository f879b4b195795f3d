// Publishes this node's own entries: `node`, `health` and `uptime` (and `usage` when given)
// every interval, and a `connection` record whenever a peer connects or disconnects. Each
// entry is merged locally first (the same validation as anyone else's) and then gossiped.
import { signEntry, type SignedEntry, type Signer } from '../entry/entry.ts'
import { ConnectionLog, type ConnectionLogOptions } from '../entry/connection-log.ts'
import type { EntryType, NodeValue, HealthValue, UptimeValue, UsageValue, EntryValue } from '../entry/types.ts'
import type { SporeMerger } from '../merge/spore-merger.ts'
import type { TierStore } from '../store/tier-store.ts'
import type { SporeLogger } from '../logger.ts'

export interface SelfSummary {
  node: NodeValue
  health: HealthValue
  uptime: UptimeValue
  usage?: UsageValue
}

export interface SelfPublisherOptions {
  signer: Signer
  /** The node's current state; called at each publication (without it only connection records are published). */
  summary?: () => SelfSummary | Promise<SelfSummary>
  merger: SporeMerger
  latent: TierStore
  /** Gossips an entry (LatentGossip.publish); absent when the node is not networked yet. */
  publish?: (entry: SignedEntry) => Promise<void>
  intervalMs?: number
  clock?: () => number
  log: SporeLogger
  connections?: ConnectionLogOptions
  /** The node entry expires this long after each publication, so a node that left drops out (default 24 h). */
  nodeLifetimeMs?: number
}

export class SelfPublisher {
  private readonly o: SelfPublisherOptions
  private readonly connections: ConnectionLog
  private readonly lastSeq = new Map<string, number>()
  private timer: ReturnType<typeof setInterval> | undefined

  constructor (options: SelfPublisherOptions) {
    this.o = options
    this.connections = new ConnectionLog(options.connections)
  }

  start (): void {
    if (this.timer !== undefined || this.o.summary === undefined) return
    void this.publishNow().catch(err => this.o.log.warn({ err: (err as Error).message }, 'publishing own spore entries failed'))
    this.timer = setInterval(() => {
      void this.publishNow().catch(err => this.o.log.warn({ err: (err as Error).message }, 'publishing own spore entries failed'))
    }, this.o.intervalMs ?? 60_000)
    this.timer.unref?.()
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** Signs, merges and gossips the node's own entries now; returns them. */
  async publishNow (): Promise<SignedEntry[]> {
    if (this.o.summary === undefined) return []
    const summary = await this.o.summary()
    const me = this.o.signer.peerId
    const lifetime = this.o.nodeLifetimeMs ?? 24 * 3600_000
    const entries: SignedEntry[] = [this.sign('node', me, summary.node, lifetime), this.sign('health', me, summary.health), this.sign('uptime', me, summary.uptime)]
    if (summary.usage !== undefined) entries.push(this.sign('usage', me, summary.usage))
    return await this.mergeAndGossip(entries)
  }

  /** Records a connect or disconnect seen by this node and publishes the remote's connection record. */
  async recordConnection (remote: string, kind: 'connect' | 'disconnect'): Promise<SignedEntry> {
    const value = this.connections.record(remote, kind, this.now())
    const entry = this.sign('connection', `${this.o.signer.peerId}/${remote}`, value)
    await this.mergeAndGossip([entry])
    return entry
  }

  private async mergeAndGossip (entries: SignedEntry[]): Promise<SignedEntry[]> {
    const outcomes = await this.o.merger.merge('latent', entries)
    const merged = outcomes.flatMap(o => o.status === 'merged' ? [o.entry] : [])
    if (this.o.publish !== undefined) for (const e of merged) await this.o.publish(e)
    return merged
  }

  private now (): number {
    return (this.o.clock ?? Date.now)()
  }

  /** seq is at least the clock in ms, so it keeps rising across restarts even if the database was lost. */
  private sign<T extends EntryType> (type: T, key: string, value: EntryValue<T>, lifetimeMs?: number): SignedEntry<T> {
    const id = `${type}/${key}`
    const held = this.o.latent.getById(id)?.seq ?? 0
    const now = this.now()
    const seq = Math.max(now, held + 1, (this.lastSeq.get(id) ?? 0) + 1)
    this.lastSeq.set(id, seq)
    return signEntry(this.o.signer, { type, key, value, seq, issuedAt: now, ...(lifetimeMs === undefined ? {} : { expiresAt: now + lifetimeMs }) })
  }
}
