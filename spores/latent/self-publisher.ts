// Publishes this node's own entries: `node`, `health` and `uptime` (and `usage` when given),
// and a `connection` record whenever a peer connects or disconnects. Each entry is merged
// locally first (the same validation as anyone else's) and then gossiped. The summary is read
// every interval, but an entry travels only when it changed in a way readers act on
// (self-change.ts) or its refresh is due: every node receives every node's entries, so a
// summary re-sent unchanged every minute made each node's idle traffic grow with N. Anti-entropy
// (a sync with a random peer every minute and with each new one) repairs what gossip missed.
import { signEntry, type SignedEntry, type Signer } from '../entry/entry.ts'
import { ConnectionLog, type ConnectionLogOptions } from '../entry/connection-log.ts'
import type { EntryType, NodeValue, HealthValue, UptimeValue, UsageValue, EntryValue } from '../entry/types.ts'
import type { SporeMerger } from '../merge/spore-merger.ts'
import { materialKey } from './self-change.ts'
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
  /**
   * An unchanged entry is re-published after this long (default 10 intervals, 10 min; at most a
   * quarter of the node entry's lifetime, so a live node's entry never expires between two).
   */
  refreshMs?: number
}

export class SelfPublisher {
  private readonly o: SelfPublisherOptions
  private readonly connections: ConnectionLog
  private readonly lastSeq = new Map<string, number>()
  /** per own entry id: the material part of the value last published and when */
  private readonly sent = new Map<string, { key: string, at: number }>()
  private timer: ReturnType<typeof setInterval> | undefined

  constructor (options: SelfPublisherOptions) {
    this.o = options
    this.connections = new ConnectionLog(options.connections)
  }

  start (): void {
    if (this.timer !== undefined || this.o.summary === undefined) return
    void this.publishNow().catch(err => this.o.log.warn({ err: (err as Error).message }, 'publishing own spore entries failed'))
    this.timer = setInterval(() => {
      void this.publishDue().catch(err => this.o.log.warn({ err: (err as Error).message }, 'publishing own spore entries failed'))
    }, this.o.intervalMs ?? 60_000)
    this.timer.unref?.()
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** Signs, merges and gossips all of the node's own entries now; returns them. */
  async publishNow (): Promise<SignedEntry[]> {
    return await this.publish(true)
  }

  /** Signs, merges and gossips the own entries that changed materially or whose refresh is due. */
  async publishDue (): Promise<SignedEntry[]> {
    return await this.publish(false)
  }

  get refreshMs (): number {
    const lifetime = this.o.nodeLifetimeMs ?? 24 * 3600_000
    return this.o.refreshMs ?? Math.min(10 * (this.o.intervalMs ?? 60_000), Math.floor(lifetime / 4))
  }

  private async publish (all: boolean): Promise<SignedEntry[]> {
    if (this.o.summary === undefined) return []
    const summary = await this.o.summary()
    const me = this.o.signer.peerId
    const lifetime = this.o.nodeLifetimeMs ?? 24 * 3600_000
    const now = this.now()
    const values: Array<[EntryType, unknown]> = [['node', summary.node], ['health', summary.health], ['uptime', summary.uptime]]
    if (summary.usage !== undefined) values.push(['usage', summary.usage])
    const entries: SignedEntry[] = []
    for (const [type, value] of values) {
      const key = materialKey(type, value)
      const last = this.sent.get(type)
      if (!all && last !== undefined && last.key === key && now - last.at < this.refreshMs) continue
      this.sent.set(type, { key, at: now })
      entries.push(this.sign(type, me, value as EntryValue<typeof type>, type === 'node' ? lifetime : undefined))
    }
    return entries.length === 0 ? [] : await this.mergeAndGossip(entries)
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
