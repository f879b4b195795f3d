// mycelium vm …: VMs whose memory is replicated to backups over parallel links (RAM replication).
// The VM runs inside the local daemon; these commands call its admin API.
import { UsageError, parsePositiveInt } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson, type CommandContext } from '../context.ts'

const PATTERNS = ['random', 'sequential', 'hot', 'full']
const THROTTLES = ['linear', 'exponential', 'none']
const EMERGENCY = ['pause', 'best-effort']
/** Execution engines (ram-replication GUEST_ENGINES); unset, the daemon uses KVM where /dev/kvm is usable. */
const ENGINES = ['kvm', 'interpreted']
const INITIAL_SYNC_WAIT_MS = 120_000

/** What `mycelium vm status --json` prints (GET /vm/status). */
export interface VmStatus {
  vmId: string
  role: string
  state: string
  primary: string
  backups: Array<{ peerId: string, ackedEpoch: number, lagMs: number }>
  epoch: number
  epochsPerS: number
  dirtyPagesPerS: number
  bytesPerS: number
  links: Array<{ via: string, bytesPerS: number, up: boolean }>
  guestCounter: number
  /** Which engine runs the guest (kvm or interpreted); for a backup, the one it will resume on. */
  engine?: string
  initialSync?: { done: number, total: number, finished: boolean, error?: string }
  migration?: { phase: string, round: number, dirtyPages: number }
  verify?: { equal: number, different: number, lastEqualEpoch: number }
  takenOver?: {
    how: string
    from: string
    epoch: number
    guestCounter: number
    resumedAt: number
    primaryLostAt?: number
    /** ms from the lease running out (as this node's vote saw it) to the guest running here */
    takeOverMs?: number
    reprotection?: { state: 'placing' | 'syncing' | 'protected' | 'unprotected', backups: string[], error?: string }
  }
  /**
   * The VM's lease: on the node that runs it, whether it holds it (holds, remainingMs, fenced:
   * the vCPU was stopped because the lease was about to end); on a backup, this node's vote.
   */
  lease?: { term: number, holds?: boolean, holder?: string, remainingMs: number, voters: string[], generation: number, fenced?: boolean, fencedPauses?: number }
}

/** A one-line bar on stderr, drawn only when stderr is a terminal. */
class ProgressBar {
  private readonly enabled = process.stderr.isTTY === true
  private drawn = false

  update (label: string, fraction: number, detail = ''): void {
    if (!this.enabled) return
    const width = 30
    const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width)
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(fraction * 100)}% ${detail}\x1b[K`)
    this.drawn = true
  }

  done (): void {
    if (this.drawn) process.stderr.write('\r\x1b[K')
    this.drawn = false
  }
}

function choice (value: unknown, flag: string, allowed: string[], fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !allowed.includes(value)) throw new UsageError(`--${flag} must be ${allowed.join(' or ')}`)
  return value
}

function wholeNumber (value: unknown, flag: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback
  if (min === 0 && value === '0') return 0
  return parsePositiveInt(value as string, flag)
}

function oneVmId (positional: string[], usage: string): string {
  if (positional.length !== 1) throw new UsageError(`usage: ${usage}`)
  return positional[0]
}

function rate (bytesPerS: number): string {
  if (bytesPerS >= 1e6) return `${(bytesPerS / 1e6).toFixed(1)} MB/s`
  if (bytesPerS >= 1e3) return `${(bytesPerS / 1e3).toFixed(1)} kB/s`
  return `${Math.round(bytesPerS)} B/s`
}

async function vmStatus (ctx: CommandContext, vmId: string): Promise<VmStatus> {
  return await api(ctx).request<VmStatus>('GET', `/vm/status?vmId=${encodeURIComponent(vmId)}`)
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export const vmRun: Command = {
  name: 'vm run',
  usage: 'mycelium vm run [--memory-mb 256] [--backups 1] [--links 4] [--dirty-rate PAGES_PER_S] [--pattern random|sequential|hot|full] [--report-every N] [--throttle linear|exponential] [--emergency pause|best-effort] [--backup PEER_ID]... [--verify-epochs] [--engine kvm|interpreted] [--json]',
  summary: 'start a VM in the local daemon, replicated to backups over parallel links; prints its id',
  flags: {
    'memory-mb': { type: 'string' },
    backups: { type: 'string' },
    links: { type: 'string' },
    'dirty-rate': { type: 'string' },
    pattern: { type: 'string' },
    'report-every': { type: 'string' },
    throttle: { type: 'string' },
    emergency: { type: 'string' },
    backup: { type: 'list' },
    'verify-epochs': { type: 'boolean' },
    engine: { type: 'string' }
  },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError('vm run takes no arguments (options only)')
    const memoryMb = wholeNumber(flags['memory-mb'], 'memory-mb', 256)
    if (memoryMb > 16384) throw new UsageError('--memory-mb must be at most 16384')
    const pinnedBackups = (flags.backup as string[] | undefined) ?? []
    const body = {
      memoryMb,
      backups: wholeNumber(flags.backups, 'backups', Math.max(1, pinnedBackups.length)),
      pinnedBackups,
      links: wholeNumber(flags.links, 'links', 4),
      dirtyRate: wholeNumber(flags['dirty-rate'], 'dirty-rate', 1000, 0),
      pattern: choice(flags.pattern, 'pattern', PATTERNS, 'random'),
      reportEvery: flags['report-every'] === undefined ? undefined : wholeNumber(flags['report-every'], 'report-every', 64, 0),
      throttle: choice(flags.throttle, 'throttle', THROTTLES, 'none'),
      emergency: choice(flags.emergency, 'emergency', EMERGENCY, 'pause'),
      verifyEpochs: flags['verify-epochs'] === true,
      // Unset: the daemon picks KVM where /dev/kvm is usable, the interpreter otherwise.
      engine: flags.engine === undefined ? undefined : choice(flags.engine, 'engine', ENGINES, 'kvm')
    }
    const started = await api(ctx).request<{ vmId: string, engine?: string }>('POST', '/vm/run', body)
    // Wait for the first full copy on the backups: until then the VM is not protected.
    const bar = new ProgressBar()
    const deadline = Date.now() + INITIAL_SYNC_WAIT_MS
    let synced = false
    while (Date.now() < deadline) {
      const s = await vmStatus(ctx, started.vmId)
      const sync = s.initialSync
      if (sync?.error !== undefined) { bar.done(); ctx.err(`initial sync of ${started.vmId} failed: ${sync.error} (the VM runs unprotected)`); break }
      if (sync === undefined || sync.finished) { synced = true; break }
      bar.update('initial sync', sync.total > 0 ? sync.done / sync.total : 0, `${sync.done}/${sync.total} backup(s)`)
      await sleep(200)
    }
    bar.done()
    if (!synced) ctx.err(`initial sync of ${started.vmId} still running after ${INITIAL_SYNC_WAIT_MS / 1000} s (see mycelium vm status ${started.vmId})`)
    if (ctx.json) printJson(ctx, { vmId: started.vmId, engine: started.engine })
    else ctx.out(started.vmId)
  }
}

export const vmLs: Command = {
  name: 'vm ls',
  usage: 'mycelium vm ls [--json]',
  summary: 'VMs this node runs or backs up',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('vm ls takes no arguments')
    const list = await api(ctx).request<Array<{ vmId: string, role: string, state: string, epoch: number, guestCounter: number, memoryBytes: number, origin?: string, engine?: string }>>('GET', '/vm/ls')
    if (ctx.json) { printJson(ctx, list); return }
    if (list.length === 0) { ctx.out('no VMs on this node'); return }
    for (const vm of list) {
      ctx.out(`${vm.vmId}  ${vm.role.padEnd(7)} ${vm.state.padEnd(12)} epoch ${vm.epoch}  counter ${vm.guestCounter}  ${Math.round(vm.memoryBytes / 1048576)} MiB  ${vm.engine ?? '-'}${vm.origin !== undefined ? `  from ${vm.origin}` : ''}`)
    }
  }
}

export const vmStatusCommand: Command = {
  name: 'vm status',
  usage: 'mycelium vm status <vmId> [--json]',
  summary: 'a VM\'s state, epochs, backups with their acknowledged epochs, links and guest counter',
  async run (ctx, { positional }) {
    const vmId = oneVmId(positional, 'mycelium vm status <vmId> [--json]')
    const s = await vmStatus(ctx, vmId)
    if (ctx.json) { printJson(ctx, s); return }
    const lines = [
      `vm        ${s.vmId} (${s.role})`,
      `state     ${s.state}`,
      `engine    ${s.engine ?? 'unknown (no epoch applied yet)'}`,
      `primary   ${s.primary}`,
      `epoch     ${s.epoch}  (${s.epochsPerS.toFixed(1)} epochs/s, ${Math.round(s.dirtyPagesPerS)} dirty pages/s, ${rate(s.bytesPerS)})`,
      `counter   ${s.guestCounter}`
    ]
    if (s.lease !== undefined) {
      const who = s.lease.holds !== undefined ? (s.lease.holds ? 'held here' : s.lease.fenced === true ? 'NOT held: vCPU stopped' : 'not held') : `held by ${s.lease.holder ?? '?'}`
      lines.push(`lease     term ${s.lease.term}, ${who}, ${s.lease.remainingMs} ms left, ${s.lease.voters.length} voters (generation ${s.lease.generation})`)
    }
    if (s.takenOver !== undefined) {
      lines.push(`taken over by ${s.takenOver.how} from ${s.takenOver.from} at epoch ${s.takenOver.epoch} (counter ${s.takenOver.guestCounter}${s.takenOver.takeOverMs !== undefined ? `, ${s.takenOver.takeOverMs} ms after the lease ran out` : ''})`)
      const r = s.takenOver.reprotection
      if (r !== undefined) lines.push(`protected ${r.state}${r.backups.length > 0 ? ` (new backups ${r.backups.join(', ')})` : ''}${r.error !== undefined ? `: ${r.error}` : ''}`)
    }
    for (const b of s.backups) lines.push(`backup    ${b.peerId}  acked epoch ${b.ackedEpoch}  lag ${Math.round(b.lagMs)} ms`)
    for (const l of s.links) lines.push(`link      ${l.via.padEnd(52)} ${l.up ? 'up  ' : 'down'} ${rate(l.bytesPerS)}`)
    ctx.out(lines.join('\n'))
  }
}

export const vmMigrate: Command = {
  name: 'vm migrate',
  usage: 'mycelium vm migrate <vmId> --to <peerId> [--json]',
  summary: 'move a VM to one of its backups (converge, then stop-and-copy); reports the downtime',
  flags: { to: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    const vmId = oneVmId(positional, 'mycelium vm migrate <vmId> --to <peerId> [--json]')
    const to = flags.to
    if (typeof to !== 'string' || to === '') throw new UsageError('vm migrate needs --to <peerId> (one of the VM\'s backups)')
    const bar = new ProgressBar()
    let finished = false
    const migration = api(ctx).request<{ target: string, downtimeMs: number, rounds: number, finalPages: number, epoch: number, pauseMs: number, checkpointMs: number, handoverMs: number, guestCounter: number }>('POST', '/vm/migrate', { vmId, to })
      .finally(() => { finished = true })
    const progress = (async () => {
      if (process.stderr.isTTY !== true) return
      while (!finished) {
        const m = (await vmStatus(ctx, vmId).catch(() => undefined))?.migration
        if (m !== undefined) bar.update(m.phase, m.phase === 'converge' ? Math.min(0.9, m.round / 10) : m.phase === 'done' ? 1 : 0.95, `round ${m.round}, ${m.dirtyPages} dirty pages`)
        await sleep(150)
      }
    })()
    try {
      const report = await migration
      await progress
      bar.done()
      if (ctx.json) { printJson(ctx, report); return }
      ctx.out(`migrated ${vmId} to ${report.target}: downtime ${report.downtimeMs.toFixed(1)} ms (pause ${report.pauseMs.toFixed(1)}, last epoch ${report.checkpointMs.toFixed(1)}, handover ${report.handoverMs.toFixed(1)}), ${report.rounds} round(s), last epoch ${report.epoch} with ${report.finalPages} pages`)
    } finally {
      bar.done()
    }
  }
}

export const vmStop: Command = {
  name: 'vm stop',
  usage: 'mycelium vm stop <vmId>',
  summary: 'stop a VM that runs on this node (its backups drop their replicas)',
  async run (ctx, { positional }) {
    const vmId = oneVmId(positional, 'mycelium vm stop <vmId>')
    await api(ctx).request('POST', '/vm/stop', { vmId })
    if (ctx.json) printJson(ctx, { vmId, stopped: true })
    else ctx.err(`stopped ${vmId}`)
  }
}
