// Round metrics kept in memory (for `mycelium status`/admin JSON) and forwarded to an optional
// sink (the daemon's Prometheus registry).
import { FAULT_REASONS, type FaultReason } from './fault-rules.ts'
import type { RoundFailureReason } from './errors.ts'

export interface ConsensusMetricsSink {
  roundLatency?: (op: string, ms: number) => void
  roundFailed?: (op: string, reason: RoundFailureReason) => void
  slashed?: (reason: FaultReason) => void
  readOnly?: (readOnly: boolean) => void
}

export interface ConsensusMetricsSnapshot {
  roundsCertified: number
  roundsFailed: Partial<Record<RoundFailureReason, number>>
  roundLatencyMs: { median: number | null, p99: number | null, samples: number }
  slashes: Record<FaultReason, number>
  conflictsRefused: number
  /** Proposals for keys this node holds certified, ignored (a stale or hostile proposer). */
  proposalsForCertified: number
  readOnly: boolean
}

const LATENCY_SAMPLES = 512

export function percentile (sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
}

export class ConsensusMetrics {
  private readonly latencies: number[] = []
  private certified = 0
  private readonly failed: Partial<Record<RoundFailureReason, number>> = {}
  private readonly slashes = Object.fromEntries(FAULT_REASONS.map(r => [r, 0])) as Record<FaultReason, number>
  private conflicts = 0
  private stale = 0
  private readOnlyState = false
  private readonly sink: ConsensusMetricsSink

  constructor (sink: ConsensusMetricsSink = {}) {
    this.sink = sink
  }

  roundCertified (op: string, ms: number): void {
    this.certified++
    this.latencies.push(ms)
    if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift()
    this.sink.roundLatency?.(op, ms)
  }

  roundFailed (op: string, reason: RoundFailureReason): void {
    this.failed[reason] = (this.failed[reason] ?? 0) + 1
    this.sink.roundFailed?.(op, reason)
  }

  slashed (reason: FaultReason): void {
    this.slashes[reason]++
    this.sink.slashed?.(reason)
  }

  staleProposal (): void {
    this.stale++
  }

  conflictRefused (): void {
    this.conflicts++
  }

  setReadOnly (readOnly: boolean): void {
    if (readOnly !== this.readOnlyState) this.sink.readOnly?.(readOnly)
    this.readOnlyState = readOnly
  }

  snapshot (): ConsensusMetricsSnapshot {
    const sorted = [...this.latencies].sort((a, b) => a - b)
    return {
      roundsCertified: this.certified,
      roundsFailed: { ...this.failed },
      roundLatencyMs: { median: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), samples: sorted.length },
      slashes: { ...this.slashes },
      conflictsRefused: this.conflicts,
      proposalsForCertified: this.stale,
      readOnly: this.readOnlyState
    }
  }
}
