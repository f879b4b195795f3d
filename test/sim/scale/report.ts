// The figures of one run, computed from what the model recorded, and their table.
import { sclerotiumTarget } from '../../../roles/index.ts'
import type { ModelState, ScaleOptions } from './scale-model.ts'
import { WARMUP_MS } from './scale-model.ts'
import type { TrafficKind } from './traffic.ts'

export interface ScaleReport {
  nodes: number
  seconds: number
  seed: number
  /** Virtual seconds actually simulated (less than `seconds` when the wall-clock budget ran out). */
  simulatedSeconds: number
  /** Why the run stopped before `seconds`, if it did. */
  stopped?: string
  wallSeconds: number
  heapMiB: number
  /** Connections per live node at the end. */
  meanDegree: number
  latentPerNode: number
  traffic: Array<{ kind: TrafficKind | 'all', msgsIn: number, msgsOut: number, bytesIn: number, bytesOut: number }>
  busiestBytesPerSecond: number
  convergence: { probes: number, complete: number, medianMs: number | null, maxMs: number | null, worstReach: number }
  sclerotia: { target: number, final: number, min: number, max: number, firstAtTargetS: number | null }
  replacements: { kills: number, replaced: number, medianMs: number | null, maxMs: number | null }
  churn: { joins: number, leaves: number, crashes: number }
  roleChanges: number
}

function median (xs: number[]): number | null {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)]
}

export function measure (options: ScaleOptions, state: ModelState): ScaleReport {
  const done = state.completedMs
  // an entry has converged when every node live when it was published, and still live, holds it
  const times: number[] = []
  let worstReach = 1
  let counted = 0
  for (const p of state.probes) {
    if (p.at - 1_800_000_000_000 > done - 20_000) continue
    counted++
    const targets = [...p.targets].filter(n => state.nodes.has(n))
    const reached = targets.filter(n => p.reached.has(n))
    worstReach = Math.min(worstReach, targets.length === 0 ? 1 : reached.length / targets.length)
    if (reached.length === targets.length) times.push(Math.max(0, ...reached.map(n => p.reached.get(n) as number)))
  }
  // replacement: the first promotion to sclerotium after each killed sclerotium
  const delays: number[] = []
  for (const k of state.kills) {
    const next = state.roleChanges.find(c => c.at > k.at && c.role === 'sclerotium')
    if (next !== undefined) delays.push(next.at - k.at)
  }
  const late = state.samples.filter(s => s.at > Math.max(WARMUP_MS, done - 60_000))
  const first = state.samples.find(s => s.sclerotia === s.target && s.target > 0)
  const last = state.samples[state.samples.length - 1]
  return {
    nodes: options.nodes,
    seconds: options.seconds,
    seed: options.seed,
    simulatedSeconds: done / 1000,
    stopped: state.stopped,
    wallSeconds: state.wallMs / 1000,
    heapMiB: state.heapMiB,
    meanDegree: state.meanDegree,
    latentPerNode: state.latentPerNode,
    traffic: state.traffic.rates(),
    busiestBytesPerSecond: state.traffic.busiest(Math.max(1, done - WARMUP_MS)),
    convergence: { probes: counted, complete: times.length, medianMs: median(times), maxMs: times.length === 0 ? null : Math.max(...times), worstReach },
    sclerotia: {
      target: sclerotiumTarget(last?.live ?? 0),
      final: last?.sclerotia ?? 0,
      min: late.length === 0 ? 0 : Math.min(...late.map(s => s.sclerotia)),
      max: late.length === 0 ? 0 : Math.max(...late.map(s => s.sclerotia)),
      firstAtTargetS: first === undefined ? null : first.at / 1000
    },
    replacements: { kills: state.kills.length, replaced: delays.length, medianMs: median(delays), maxMs: delays.length === 0 ? null : Math.max(...delays) },
    churn: state.churn,
    roleChanges: state.roleChanges.length
  }
}

const kib = (b: number): string => Number.isFinite(b) ? (b / 1024).toFixed(1) : '—'
const rate = (x: number): string => Number.isFinite(x) ? x.toFixed(1) : '—'
const s = (ms: number | null): string => ms === null ? '—' : (ms / 1000).toFixed(1)

/** One table, a column per run. */
export function formatReports (reports: ScaleReport[]): string {
  const rows: Array<[string, (r: ScaleReport) => string]> = [
    ['nodes (N)', r => r.nodes.toLocaleString('en')],
    ['virtual seconds simulated', r => `${r.simulatedSeconds} of ${r.seconds}`],
    ['wall time, s', r => r.wallSeconds.toFixed(0)],
    ['peak JS heap, MiB', r => r.heapMiB.toFixed(0)],
    ['connections per node (mean)', r => r.meanDegree.toFixed(1)],
    ['latent entries held per node (mean)', r => r.latentPerNode.toFixed(0)],
    ['churn: joins / leaves / crashes', r => `${r.churn.joins} / ${r.churn.leaves} / ${r.churn.crashes}`],
    ['msgs/s per node, in / out', r => { const a = r.traffic.find(t => t.kind === 'all'); return a === undefined ? '—' : `${rate(a.msgsIn)} / ${rate(a.msgsOut)}` }],
    ...(['roles', 'latent', 'sync'] as const).map((k): [string, (r: ScaleReport) => string] => [`  ${k}: KiB/s per node, in / out`, r => { const t = r.traffic.find(x => x.kind === k); return t === undefined ? '—' : `${kib(t.bytesIn)} / ${kib(t.bytesOut)}` }]),
    ['KiB/s per node, in / out', r => { const a = r.traffic.find(t => t.kind === 'all'); return a === undefined ? '—' : `${kib(a.bytesIn)} / ${kib(a.bytesOut)}` }],
    ['busiest node, KiB/s in + out', r => r.simulatedSeconds * 1000 > WARMUP_MS ? kib(r.busiestBytesPerSecond) : '—'],
    ['entry convergence, s (median / max)', r => `${s(r.convergence.medianMs)} / ${s(r.convergence.maxMs)}`],
    ['entries reaching every live node', r => `${r.convergence.complete} of ${r.convergence.probes} (worst ${(100 * r.convergence.worstReach).toFixed(1)} %)`],
    ['sclerotia: final / target √N', r => `${r.sclerotia.final} / ${r.sclerotia.target}`],
    ['sclerotia, last minute (min–max)', r => `${r.sclerotia.min}–${r.sclerotia.max}`],
    ['first at target, s', r => r.sclerotia.firstAtTargetS === null ? '—' : r.sclerotia.firstAtTargetS.toFixed(0)],
    ['sclerotium crashed → promotion, s (median / max)', r => `${s(r.replacements.medianMs)} / ${s(r.replacements.maxMs)} (${r.replacements.replaced} of ${r.replacements.kills})`],
    ['role changes', r => String(r.roleChanges)]
  ]
  const width = Math.max(...rows.map(([l]) => l.length))
  const cols = reports.map(r => rows.map(([, f]) => f(r)))
  const colWidth = cols.map(c => Math.max(...c.map(x => x.length)))
  return rows.map(([label], i) => `${label.padEnd(width)}  ${cols.map((c, j) => c[i].padStart(colWidth[j])).join('  ')}`).join('\n')
}
