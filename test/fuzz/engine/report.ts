// The figures of a run, one line per target, and the failures with what reproduces them.
import { toHex } from '../../../crypto/index.ts'
import type { TargetReport } from './run-target.ts'

export function formatTable (reports: TargetReport[]): string {
  const rows = reports.map(r => [
    r.name,
    String(r.execs),
    String(Math.round(r.execs / Math.max(r.elapsedMs / 1000, 0.001))),
    String(r.seeds + r.reasons.size),
    String(r.reasons.size),
    r.failure === undefined ? '0' : '1'
  ])
  const head = ['target', 'execs', 'execs/s', 'corpus', 'reasons', 'failures']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ')
  return [line(head), ...rows.map(line)].join('\n')
}

export function formatFailure (r: TargetReport): string {
  if (r.failure === undefined) return ''
  const hex = toHex(r.failure.input)
  return [
    `FAILURE in ${r.name} (${r.what})`,
    `  ${r.failure.message}`,
    `  input (${r.failure.input.length} bytes, ${r.failure.how}): ${hex.length > 4000 ? `${hex.slice(0, 4000)}…` : hex}`,
    `  reproduce: npm run fuzz -- --target ${r.name} --seed ${r.seed}`
  ].join('\n')
}
