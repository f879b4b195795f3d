import { existsSync } from 'node:fs'
import { dirname } from 'node:path'
import { UsageError } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson, type CommandContext } from '../context.ts'
import { DaemonNotRunningError } from '../../api/index.ts'
import type { RoleReport } from '../../../roles/index.ts'

interface RunningReport extends RoleReport {
  override?: string
  anchors?: string[]
}

const GiB = 1024 ** 3

/** The home may not exist yet: the disk that will hold it is the one of its nearest existing parent. */
function existingDir (dir: string): string {
  let d = dir
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d)
  return d
}

function gib (bytes: number | null): string {
  return bytes === null ? 'unknown' : `${(bytes / GiB).toFixed(1)} GiB`
}

function printReport (ctx: CommandContext, r: RunningReport, live: boolean): void {
  const h = r.hardware
  const n = r.network
  const lines = [
    `role       ${r.role}${r.dedicated ? ' (dedicated)' : ''}${r.override !== undefined && r.override !== 'auto' ? ` — pinned with --role ${r.override}` : ''}${live ? '' : '  (no daemon runs: the decision this machine would take now)'}`,
    `score      ${r.score}/100`,
    `hardware   ${h.cpuCores} × ${h.cpuModel}, ${h.arch}${h.pageSizeBytes != null ? ` (${h.pageSizeBytes / 1024} KiB pages)` : ''}; memory ${gib(h.memAvailableBytes)} free of ${gib(h.memTotalBytes)}; disk ${gib(h.diskFreeBytes)} free`,
    `           ${h.onBattery ? 'on battery' : 'on mains'}; KVM ${h.kvm ? 'usable' : 'not usable'}${h.raspberryPi !== null ? `; ${h.raspberryPi}` : ''}${h.profile !== undefined ? `; profile ${h.profile}` : ''}`,
    `network    ${n.reachable === null ? 'reachability unknown' : n.reachable ? 'reachable from peers' : 'not reachable from peers'}${n.rttMs !== undefined ? `, rtt ${n.rttMs} ms` : ''}${n.throughputMbps !== undefined ? `, ${n.throughputMbps} Mbit/s` : ''}`
  ]
  if (r.running !== undefined) lines.push(`network    ${r.running.sclerotia} sclerotia of ${r.running.target} wanted among ${r.running.nodes} nodes; ${r.running.changes} role change(s) since start`)
  if (r.anchors !== undefined && r.anchors.length > 0) lines.push(`anchors    ${r.anchors.join(', ')}`)
  lines.push('reasons')
  for (const reason of r.reasons) lines.push(`  - ${reason}`)
  ctx.out(lines.join('\n'))
}

export const role: Command = {
  name: 'role',
  usage: 'mycelium role [--json] [--set sclerotium|rhizomorph|hyphae|auto]',
  summary: 'this node\'s role and why (measures and decides when no daemon runs); --set changes it at runtime',
  flags: { set: { type: 'string' }, 'hardware-profile': { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError('role takes no arguments')
    const { isRoleOverride, assessRole, loadHardwareProfile, hardwareProfileFromEnv } = await import('../../../roles/index.ts')
    const set = flags.set as string | undefined
    if (set !== undefined && !isRoleOverride(set)) throw new UsageError(`--set must be sclerotium, rhizomorph, hyphae or auto (got "${set}")`)
    let report: RunningReport
    let live = true
    try {
      report = set === undefined
        ? await api(ctx).request<RunningReport>('GET', '/role')
        : await api(ctx).request<RunningReport>('POST', '/role', { role: set })
    } catch (err) {
      if (!(err instanceof DaemonNotRunningError)) throw err
      if (set !== undefined) throw new DaemonNotRunningError(`no daemon is running for ${ctx.home.dir}: pin the role at start with mycelium start --role ${set}`)
      const spec = flags['hardware-profile'] as string | undefined
      const profile = spec !== undefined ? loadHardwareProfile(spec) : hardwareProfileFromEnv()
      report = await assessRole({ dataDir: existingDir(ctx.home.dir), profile, signal: AbortSignal.timeout(30_000) })
      live = false
    }
    if (ctx.json) printJson(ctx, report)
    else printReport(ctx, report, live)
  }
}
