// One node's consensus, assembled: the round engine, primary epochs, verdict operations, the
// trust ledger, differential uptime and metrics, with the reports the CLI prints.
import { toHex } from '../crypto/index.ts'
import { RoundEngine, type RoundEngineOptions } from './round-engine.ts'
import { PrimaryEpochs, type PrimaryEpochsOptions, type EpochSummary, type Writability } from './primary-epochs.ts'
import { nodeDownOperation, promotionOperation, askVerdict, NODE_DOWN, PROMOTION, type Verdict } from './verdicts.ts'
import { ConsensusMetrics, type ConsensusMetricsSink, type ConsensusMetricsSnapshot } from './metrics.ts'
import type { TrustReport } from './trust-ledger.ts'
import type { UptimeRecord } from './uptime.ts'

export interface ConsensusOptions extends Omit<RoundEngineOptions, 'metrics' | 'isConnected'> {
  /** True while this node holds a live connection to the peer. */
  isConnected: (peerId: string) => boolean
  metricsSink?: ConsensusMetricsSink
  /** Primary epochs (sclerotia and every node that keeps the primary tier). */
  epochs: Omit<PrimaryEpochsOptions, 'engine' | 'pubsub' | 'topicPrefix' | 'isConnected' | 'log'>
  /** This member's liveness probe: true if the peer looks down. */
  isDown?: (peerId: string, signal: AbortSignal) => Promise<boolean>
  /** This member's policy for promotions that need agreement. */
  approvePromotion?: (peerId: string, role: string, signal: AbortSignal) => Promise<boolean>
  onVerdict?: (verdict: Verdict) => void
}

export interface EpochsReport {
  latest: number
  readOnly: boolean
  readOnlyReason?: string
  epochs: EpochSummary[]
  /** rounds this node takes part in now (what an operator looks at when epochs stall) */
  rounds: ReturnType<RoundEngine['activeRounds']>
  /** the committee of the next epoch (empty when the candidates are too few for f) */
  nextCommittee: string[]
}

export interface TrustReportWithExclusions extends TrustReport {
  excluded: string[]
  uptime: UptimeRecord[]
}

export class Consensus {
  readonly engine: RoundEngine
  readonly epochs: PrimaryEpochs

  constructor (options: ConsensusOptions) {
    this.engine = new RoundEngine({ ...options, metrics: new ConsensusMetrics(options.metricsSink) })
    this.epochs = new PrimaryEpochs({ ...options.epochs, engine: this.engine, pubsub: options.pubsub, topicPrefix: options.topicPrefix, isConnected: options.isConnected, log: options.log })
    const isDown = options.isDown
    if (isDown !== undefined) this.engine.register(nodeDownOperation({ chain: this.epochs.chain, isDown, onVerdict: options.onVerdict }))
    const approve = options.approvePromotion
    if (approve !== undefined) this.engine.register(promotionOperation({ chain: this.epochs.chain, approve, onVerdict: options.onVerdict }))
  }

  start (): void {
    this.engine.start()
    this.epochs.start()
  }

  async stop (): Promise<void> {
    await this.epochs.stop()
    this.engine.stop()
  }

  /** Agreement that a peer is down, from the committee's own probes. */
  async isNodeDown (peerId: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    return await askVerdict(this.engine, this.epochs.chain, NODE_DOWN, peerId, options)
  }

  /** Agreement on promoting a peer to a role. */
  async approvePromotion (peerId: string, role: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    return await askVerdict(this.engine, this.epochs.chain, PROMOTION, `${peerId}/${role}`, options)
  }

  /** `mycelium spores epochs --json`. */
  epochsReport (limit = 16): EpochsReport {
    const w: Writability = this.epochs.writability()
    return { latest: this.epochs.chain.latest()?.epoch ?? -1, readOnly: !w.writable, readOnlyReason: w.reason, epochs: this.epochs.epochs(limit), rounds: this.engine.activeRounds(), nextCommittee: this.epochs.lastCommittee() }
  }

  /** `mycelium trust --json`. */
  trustReport (): TrustReportWithExclusions {
    const report = this.engine.ledger.report()
    return { ...report, excluded: report.peers.filter(p => p.excluded).map(p => p.peerId), uptime: this.engine.uptime.records() }
  }

  /** The self-contained bytes of a slash's evidence (hex of canonical CBOR), for the admin API. */
  evidence (id: string): string | undefined {
    const bytes = this.engine.evidence(id)
    return bytes === undefined ? undefined : toHex(bytes)
  }

  metrics (): ConsensusMetricsSnapshot {
    return { ...this.engine.metrics.snapshot(), readOnly: this.epochs.isReadOnly() }
  }
}

export function createConsensus (options: ConsensusOptions): Consensus {
  return new Consensus(options)
}
