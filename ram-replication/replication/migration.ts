// Two-phase live migration of a replicated guest to one of its backups.
//
// Converge: epochs back to back, each acknowledged by the target before the next, until one is
// small (`convergeBytes`). A guest that dirties memory faster than the link carries it never gets
// there by itself, so the throttle rises step by step while rounds do not shrink (AutoConverge,
// QEMU's rule); if it still does not converge within `maxRounds` / `convergeTimeoutMs`, the
// migration fails with the figures that say why, and the guest runs on here, replicated.
//
// Handover: pause, send the last epoch flagged `handover`, wait for the target's `resumed`. The
// guest must end up running at exactly one place. If `resumed` does not come in time, the source
// withdraws the handover epoch and fences the target: it announces the next epoch number in a
// heartbeat; a backup that has heard of a newer epoch never resumes an older handover epoch, and
// echoes the heartbeat (or, if it did resume before, answers `resumed`). Echo: the target cannot
// start the guest any more, so the source resumes it. `resumed`: the migration completed late.
// Neither within `fenceMs` (the target is unreachable): the source resumes, since a target that
// cannot be reached has, in all but one case, not received the whole handover epoch; in that one
// case (every link failed between its last stripe arriving and its `resumed` leaving) the
// primary stops its copy as soon as a link brings that `resumed` (see PrimaryReplication).
import type { ReplicatedGuest } from '../checkpoint.ts'
import type { EncodedEpoch } from '../transport/epoch-encoder.ts'
import type { ReplicationLogger } from '../transport/protocols.ts'
import { AutoConverge, validateAutoConverge } from '../policy/auto-converge.ts'
import type { AutoConvergeSettings } from '../policy/auto-converge.ts'
import type { BackupSession } from './backup-session.ts'
import { MigrationFailedError, MigrationNotConvergedError, UnknownBackupError } from './errors.ts'

export interface MigrationOptions {
  /** Converge until an epoch encodes to at most this many bytes (what stop-and-copy will send). */
  convergeBytes?: number
  /** Give up (the guest runs on here) after this many converge rounds. */
  maxRounds?: number
  /** ... or after this long converging. */
  convergeTimeoutMs?: number
  /** Slow the guest while rounds do not shrink (QEMU's auto-converge; `false` = never). */
  autoConverge?: Partial<AutoConvergeSettings> | false
  /** Longest wait for the target to acknowledge one epoch. */
  ackTimeoutMs?: number
  /** How long to wait for the target to resume the guest. */
  handoverTimeoutMs?: number
  /** After a handover timeout: how long to try to reach the target to make sure it will not resume. */
  fenceMs?: number
  /**
   * Leases: called once the guest here has stopped for the last time, before the handover epoch
   * goes out; the source gives its lease up so the target can take the next term at once.
   */
  handOverLease?: () => Promise<void>
  /**
   * Leases: after a failed handover, take the lease back. Only then does the guest run here
   * again; false (the target or another node holds it, or no quorum answers) leaves it stopped.
   */
  reclaimLease?: () => Promise<boolean>
  signal?: AbortSignal
  onProgress?: (progress: MigrationProgress) => void
}

export interface MigrationProgress {
  phase: 'converge' | 'stop-and-copy' | 'done'
  round: number
  /** Pages of the round just acknowledged (stop-and-copy: of the last converge round; done: of the handover epoch). */
  dirtyPages: number
  bytes: number
  throttle: number
}

export interface MigrationReport {
  target: string
  rounds: number
  finalPages: number
  finalBytes: number
  epoch: number
  /** From the call to the target's word that the guest runs there. */
  totalMs: number
  /** Encoded bytes of every converge round and the handover epoch. */
  bytes: number
  /** From pausing the guest here to the target's word that it runs there. */
  downtimeMs: number
  /** Parts of the downtime: stopping the vCPU, taking and encoding the last epoch, then sending, applying and resuming there. */
  pauseMs: number
  checkpointMs: number
  handoverMs: number
  /** The throttle the migration ended at (auto-converge; the policy's own when it never rose). */
  throttle: number
  guestCounter: number
  /** The target's `resumed` came only after the handover timeout, while fencing. */
  late: boolean
}

/** What the migration drives on the primary (PrimaryReplication implements it). */
export interface MigrationHost {
  readonly vmId: string
  readonly guest: ReplicatedGuest
  readonly logger: ReplicationLogger
  epoch: () => number
  throttle: () => number
  session: (peer: string) => BackupSession | undefined
  /** Stop the epoch loop after its current step; the guest runs (not paused by the policy). */
  holdLoop: () => Promise<void>
  /** Back to replicating: the loop runs again. */
  releaseLoop: () => void
  takeEpoch: (handoverTo?: string) => Promise<EncodedEpoch>
  waitForAck: (backup: string, epoch: number, signal?: AbortSignal) => Promise<void>
  setThrottle: (fraction: number) => void
  /** Calls `listener` for each `resumed` (backup, epoch) and each heartbeat echo (backup, epoch) until the returned function is called. */
  onResumed: (listener: (backup: string, epoch: number) => void) => () => void
  onEcho: (listener: (backup: string, epoch: number) => void) => () => void
  /** The guest runs at `target`: stop replicating here and stop the guest. */
  finish: (target: string) => Promise<void>
}

const DEFAULTS = {
  convergeBytes: 256 * 1024,
  maxRounds: 40,
  convergeTimeoutMs: 60_000,
  ackTimeoutMs: 10_000,
  handoverTimeoutMs: 5_000,
  fenceMs: 2_000
}

/** `work(signal)` bounded by `ms` and the caller's signal; a timeout becomes a MigrationFailedError naming `what`. */
async function bounded<T> (ms: number, what: string, signal: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const timeout = AbortSignal.timeout(Math.max(1, ms))
  try {
    return await work(signal != null ? AbortSignal.any([signal, timeout]) : timeout)
  } catch (error) {
    if (timeout.aborted && signal?.aborted !== true) throw new MigrationFailedError(`timed out after ${Math.round(ms)} ms waiting for ${what}`)
    throw error
  }
}

/** Resolves with the event's epoch once `subscribe` reports `backup` at `epoch` or later; or 'timeout'. */
async function eventOrTimeout (
  subscribe: (listener: (backup: string, epoch: number) => void) => () => void,
  backup: string,
  epoch: number,
  ms: number,
  signal?: AbortSignal
): Promise<number | 'timeout'> {
  return await new Promise((resolve) => {
    const timer = setTimeout(() => { finish('timeout') }, Math.max(0, ms))
    const off = subscribe((from, at) => { if (from === backup && at >= epoch) finish(at) })
    const onAbort = (): void => { finish('timeout') }
    signal?.addEventListener('abort', onAbort, { once: true })
    function finish (outcome: number | 'timeout'): void {
      clearTimeout(timer)
      off()
      signal?.removeEventListener('abort', onAbort)
      resolve(outcome)
    }
    if (signal?.aborted === true) finish('timeout')
  })
}

interface RoundFigures { bytes: number, ms: number }

/** The guest's dirty rate and the link's throughput over the last rounds, for the report of a failure. */
function describeRates (rounds: RoundFigures[]): string {
  const recent = rounds.slice(-4)
  const bytes = recent.reduce((sum, round) => sum + round.bytes, 0)
  const ms = recent.reduce((sum, round) => sum + round.ms, 0)
  if (ms <= 0) return ''
  return `; the last ${recent.length} rounds carried ${(bytes / 1e6).toFixed(2)} MB in ${ms.toFixed(0)} ms (${(bytes / ms / 1e3).toFixed(1)} MB/s): the guest dirties as fast as the link delivers`
}

export async function migrateGuest (host: MigrationHost, target: string, options: MigrationOptions = {}): Promise<MigrationReport> {
  const session = host.session(target)
  if (session == null) throw new UnknownBackupError(`${target} is not a backup of ${host.vmId}`)
  const o = { ...DEFAULTS, ...options }
  const { signal, onProgress } = options
  const startedAt = performance.now()
  const auto = options.autoConverge === false ? undefined : new AutoConverge(validateAutoConverge(options.autoConverge ?? {}), host.throttle())
  const throttleBefore = host.throttle()
  await host.holdLoop()
  let pausedHere = false
  let leaseReleased = false
  let handedOver = false
  try {
    const deadline = Date.now() + o.convergeTimeoutMs
    const ackWait = (epoch: number, what: string): Promise<void> => bounded(Math.min(o.ackTimeoutMs, deadline - Date.now()), what, signal, async (bound) => { await host.waitForAck(target, epoch, bound) })
    await ackWait(host.epoch(), 'the target to acknowledge the epochs before the migration')
    const figures: RoundFigures[] = []
    let bytes = 0
    let rounds = 0
    let previous: EncodedEpoch | undefined
    for (;;) {
      rounds++
      const roundStarted = performance.now()
      const encoded = await host.takeEpoch()
      bytes += encoded.bytes
      await ackWait(encoded.epoch, `the target to acknowledge converge round ${rounds}`)
      figures.push({ bytes: encoded.bytes, ms: performance.now() - roundStarted })
      onProgress?.({ phase: 'converge', round: rounds, dirtyPages: encoded.pages, bytes: encoded.bytes, throttle: host.throttle() })
      if (encoded.bytes <= o.convergeBytes) {
        previous = encoded
        break
      }
      if (rounds >= o.maxRounds || Date.now() >= deadline) {
        throw new MigrationNotConvergedError(`${host.vmId} did not converge in ${rounds} rounds (${(performance.now() - startedAt).toFixed(0)} ms): the last carried ${encoded.bytes} bytes, more than ${o.convergeBytes}, at throttle ${Math.round(host.throttle() * 100)}%${auto == null ? ' (auto-converge off)' : auto.atMax ? ' (the highest)' : ''}${describeRates(figures)}`)
      }
      const raised = previous != null ? auto?.observe(encoded.bytes, previous.bytes) : undefined
      if (raised != null) {
        host.setThrottle(raised)
        host.logger.info('migration of %s: round %d carried %d bytes after %d: throttle %d%%', host.vmId, rounds, encoded.bytes, previous?.bytes ?? 0, Math.round(raised * 100))
      }
      previous = encoded
    }

    // Subscribed before the last epoch leaves, so a fast `resumed` is not missed. The timeout
    // counts from the pause: it bounds the downtime a failed handover costs.
    const resumed = eventOrTimeout(host.onResumed, target, host.epoch() + 1, o.handoverTimeoutMs, signal)
    const pausedAt = performance.now()
    await host.guest.pause()
    pausedHere = true
    const stoppedAt = performance.now()
    if (options.handOverLease !== undefined) {
      await options.handOverLease()
      leaseReleased = true
    }
    onProgress?.({ phase: 'stop-and-copy', round: rounds + 1, dirtyPages: previous.pages, bytes: previous.bytes, throttle: host.throttle() })
    const last = await host.takeEpoch(target)
    bytes += last.bytes
    const copiedAt = performance.now()
    let late = false
    if (await resumed === 'timeout') {
      const outcome = await fence(host, session, target, last.epoch, o.fenceMs, signal)
      if (outcome !== 'resumed') {
        throw new MigrationFailedError(outcome === 'fenced'
          ? `${target} did not resume ${host.vmId} within ${o.handoverTimeoutMs} ms; it has dropped the handover, and the guest runs on here`
          : `${target} did not resume ${host.vmId} within ${o.handoverTimeoutMs} ms and could not be reached for ${o.fenceMs} ms; the guest runs on here (should the target have resumed, the first word from it stops this copy)`)
      }
      late = true
    }
    handedOver = true
    const resumedAt = performance.now()
    onProgress?.({ phase: 'done', round: rounds + 1, dirtyPages: last.pages, bytes: last.bytes, throttle: host.throttle() })
    await host.finish(target)
    return {
      target,
      rounds,
      finalPages: last.pages,
      finalBytes: last.bytes,
      epoch: last.epoch,
      totalMs: resumedAt - startedAt,
      bytes,
      downtimeMs: resumedAt - pausedAt,
      pauseMs: stoppedAt - pausedAt,
      checkpointMs: copiedAt - stoppedAt,
      handoverMs: resumedAt - copiedAt,
      throttle: host.throttle(),
      guestCounter: last.guestCounter,
      late
    }
  } catch (error) {
    if (!handedOver) {
      // Back to where the migration started: the guest runs here, at the policy's throttle, replicated.
      host.setThrottle(throttleBefore)
      // With leases, the guest runs here again only once the lease is back: never beside the target.
      const mayRun = !leaseReleased || await options.reclaimLease?.().catch(() => false) === true
      if (pausedHere && mayRun) host.guest.resume()
      if (!mayRun) host.logger.error('migration of %s to %s failed and the lease could not be taken back: the guest stays stopped here', host.vmId, target)
      host.releaseLoop()
      host.logger.warn('migration of %s to %s failed: %s', host.vmId, target, (error as Error).message)
    }
    throw error
  }
}

/**
 * After a handover timeout: take the handover epoch back, and make sure the target will not
 * resume it (its echo of a heartbeat announcing the next epoch) or learn that it did.
 */
async function fence (host: MigrationHost, session: BackupSession, target: string, handoverEpoch: number, fenceMs: number, signal?: AbortSignal): Promise<'resumed' | 'fenced' | 'unreachable'> {
  session.withdraw(handoverEpoch)
  const announce = handoverEpoch + 1
  let settled: 'resumed' | 'fenced' | undefined
  const offResumed = host.onResumed((backup, epoch) => { if (backup === target && epoch >= handoverEpoch) settled = 'resumed' })
  const offEcho = host.onEcho((backup, epoch) => { if (backup === target && epoch >= announce && settled == null) settled = 'fenced' })
  try {
    const deadline = Date.now() + fenceMs
    // Every 50 ms on every link that is up (links that failed reopen meanwhile); bounded by fenceMs.
    while (settled == null && Date.now() < deadline && signal?.aborted !== true) {
      session.heartbeat(announce)
      await new Promise(resolve => setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))))
    }
  } finally {
    offResumed()
    offEcho()
  }
  return settled ?? 'unreachable'
}
