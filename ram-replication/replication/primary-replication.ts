// The primary's epoch loop. Each epoch: checkpoint the guest (it pauses only for the copy),
// encode the dirty pages once, queue the stripes to every backup, and let the links carry them
// while the guest runs on (Remus-style). Between epochs the policy turns the backlog
// (bytes no backup has acknowledged) into guest slowdown, and past its limit into the
// emergency mode: pause the guest, or drop a lagging backup to a full resync.
import { createHash } from 'node:crypto'
import type { Checkpoint, ReplicatedGuest } from '../checkpoint.ts'
import { EpochEncoder } from '../transport/epoch-encoder.ts'
import type { EncodedEpoch } from '../transport/epoch-encoder.ts'
import { replicationProtocols, silentLogger } from '../transport/protocols.ts'
import type { ReplicationLogger, ReplicationNode } from '../transport/protocols.ts'
import { throttleFor, validateThrottleCurve } from '../policy/throttle-curve.ts'
import type { ThrottleCurve } from '../policy/throttle-curve.ts'
import { decideBackup, decideGuest, validateEmergencyLimits } from '../policy/emergency-mode.ts'
import type { EmergencyLimits, EmergencyMode } from '../policy/emergency-mode.ts'
import { profileForRtt } from '../policy/network-profile.ts'
import type { NetworkProfile } from '../policy/network-profile.ts'
import { BackupSession } from './backup-session.ts'
import type { BackupStatus, EpochAcknowledgement, LinkStatus } from './backup-session.ts'
import { RateMeter } from './rate-meter.ts'
import { MigrationFailedError, ReplicationStoppedError, UnknownBackupError } from './errors.ts'

export interface BackupTarget {
  peerId: string
  /** One entry per link: the rhizomorph to go through, or undefined for a direct link. */
  via: Array<string | undefined>
}

export interface PrimaryReplicationOptions {
  node: ReplicationNode
  protocolPrefix: string
  guest: ReplicatedGuest
  backups: BackupTarget[]
  /** This node's Ed25519 secret (32 bytes): links are sealed end to end (rhizomorphs see ciphertext). */
  secretKey?: Uint8Array
  /**
   * LAN/WAN settings (from `profileForRtt`), or `auto`: chosen from the links' measured round
   * trips once they are known and revised as they change. Explicit options below override them.
   */
  profile?: NetworkProfile | 'auto'
  epochIntervalMs?: number
  windowBytes?: number
  stripeBytes?: number
  delta?: boolean
  deltaCacheBytes?: number
  throttle?: ThrottleCurve
  emergency?: EmergencyMode
  limits?: EmergencyLimits
  heartbeatMs?: number
  /**
   * Hash the guest's memory at every checkpoint, while it is paused, and report it with the
   * epoch (to compare with a backup's memory hash). Costs a pass over guest memory per epoch.
   */
  verifyEpochs?: boolean
  logger?: ReplicationLogger
}

export type ReplicationState = 'idle' | 'syncing' | 'replicating' | 'paused' | 'migrating' | 'migrated' | 'stopped' | 'failed'

export interface EpochRecord {
  epoch: number
  full: boolean
  pages: number
  zeroPages: number
  deltaPages: number
  bytes: number
  rawBytes: number
  guestCounter: number
  /** SHA-256 of guest memory at the checkpoint (with `verifyEpochs`). */
  memoryHash?: Uint8Array
  checkpointMs: number
}

export interface ReplicationStatus {
  vmId: string
  state: ReplicationState
  /** This node's peer id. */
  primary: string
  epoch: number
  epochsPerS: number
  dirtyPagesPerS: number
  bytesPerS: number
  guestCounter: number
  throttle: number
  backlogBytes: number
  /** The LAN/WAN profile in force (absent until chosen). */
  profile?: 'lan' | 'wan'
  backups: BackupStatus[]
  links: LinkStatus[]
}

export interface MigrationOptions {
  /** Converge until an epoch encodes to at most this many bytes (what stop-and-copy will send). */
  convergeBytes?: number
  maxRounds?: number
  /**
   * Slow the guest while it does not converge (like QEMU's auto-converge): every `rounds`
   * rounds without reaching `convergeBytes`, the throttle rises by `step` (up to 0.9).
   */
  autoConverge?: { rounds: number, step: number } | false
  /** How long to wait for the target to resume the guest. */
  handoverTimeoutMs?: number
  /**
   * Called once the guest here has stopped for the last time, before the handover epoch goes
   * out: the source gives its lease up so the target can take the next term at once.
   */
  handOverLease?: () => Promise<void>
  /**
   * After a handover that was not confirmed: take the lease back. True: no other node holds
   * it, and the guest may run here again. False (or not set): it stays paused.
   */
  reclaimLease?: () => Promise<boolean>
  signal?: AbortSignal
  onProgress?: (progress: { phase: 'converge' | 'stop-and-copy' | 'done', round: number, dirtyPages: number }) => void
}

export interface MigrationReport {
  target: string
  rounds: number
  finalPages: number
  finalBytes: number
  epoch: number
  /** From pausing the guest here to the target's word that it runs there. */
  downtimeMs: number
  /** Parts of the downtime: stopping the vCPU, taking and encoding the last epoch, then sending, applying and resuming there. */
  pauseMs: number
  checkpointMs: number
  handoverMs: number
  /** The throttle auto-converge reached (0 when it was not needed). */
  throttle: number
  guestCounter: number
}

interface Listeners {
  ack: Array<(ack: EpochAcknowledgement) => void>
  epoch: Array<(record: EpochRecord) => void>
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done)
  })
}

export class PrimaryReplication {
  readonly vmId: string
  private readonly guest: ReplicatedGuest
  private readonly options: PrimaryReplicationOptions
  private readonly logger: ReplicationLogger
  private readonly encoder: EpochEncoder
  private readonly sessions = new Map<string, BackupSession>()
  private readonly listeners: Listeners = { ack: [], epoch: [] }
  private readonly epochMeter = new RateMeter()
  private readonly pageMeter = new RateMeter()
  private readonly throttleCurve: ThrottleCurve
  private readonly emergency: EmergencyMode
  private readonly limits: EmergencyLimits
  private epochIntervalMs: number
  private profileValue?: NetworkProfile
  private readonly controller = new AbortController()
  private epochValue = 0
  private stateValue: ReplicationState = 'idle'
  private throttleValue = 0
  private pausedByPolicy = false
  private loop?: Promise<void>
  private stepping: Promise<void> = Promise.resolve()
  private heartbeatTimer?: ReturnType<typeof setInterval>
  private holdLoop = false
  private readonly resumedWaiters = new Map<string, () => void>()

  constructor (options: PrimaryReplicationOptions) {
    this.options = options
    this.guest = options.guest
    this.vmId = options.guest.vmId
    this.logger = options.logger ?? silentLogger
    const profile = options.profile === 'auto' ? undefined : options.profile
    this.profileValue = profile
    this.encoder = new EpochEncoder({ stripeBytes: options.stripeBytes ?? profile?.stripeBytes, delta: options.delta, deltaCacheBytes: options.deltaCacheBytes })
    this.throttleCurve = validateThrottleCurve(options.throttle ?? { kind: 'none' })
    this.emergency = options.emergency ?? 'pause'
    const limitBytes = profile?.backlogLimitBytes ?? 256 * 1024 * 1024
    this.limits = validateEmergencyLimits(options.limits ?? { limitBytes, resumeBytes: Math.floor(limitBytes / 4) })
    this.epochIntervalMs = options.epochIntervalMs ?? profile?.epochIntervalMs ?? 10
    const protocols = replicationProtocols(options.protocolPrefix)
    // Later runs of the same VM's replication (a restarted primary, a resumed VM) carry larger run ids.
    const run = Date.now() * 1024 + Math.floor(Math.random() * 1024)
    for (const target of options.backups) {
      this.sessions.set(target.peerId, new BackupSession({
        node: options.node,
        protocols,
        vmId: this.vmId,
        backup: target.peerId,
        routes: target.via.map(via => ({ backup: target.peerId, via })),
        windowBytes: options.windowBytes ?? profile?.windowBytes ?? 4 * 1024 * 1024,
        run,
        secretKey: options.secretKey,
        logger: this.logger,
        onAck: (ack) => { for (const listener of this.listeners.ack) listener(ack) },
        onResumed: (backup) => { this.resumedWaiters.get(backup)?.() },
        onMismatch: (backup, epoch) => {
          this.logger.error('backup %s diverged at epoch %d: resyncing it', backup, epoch)
          this.sessions.get(backup)?.dropToResync()
        }
      }))
    }
  }

  on<K extends keyof Listeners> (event: K, listener: Listeners[K][number]): () => void {
    const list = this.listeners[event] as Array<typeof listener>
    list.push(listener)
    return () => {
      const index = list.indexOf(listener)
      if (index >= 0) list.splice(index, 1)
    }
  }

  get state (): ReplicationState {
    return this.stateValue
  }

  get epoch (): number {
    return this.epochValue
  }

  /** Open the links, send the whole guest as epoch 1, and start the epoch loop. */
  async start (options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.stateValue !== 'idle') throw new ReplicationStoppedError(`replication is ${this.stateValue}`)
    this.stateValue = 'syncing'
    try {
      await Promise.all([...this.sessions.values()].map(async session => { await session.open(options.signal) }))
      await this.runEpoch(true)
    } catch (error) {
      this.stateValue = 'failed'
      this.controller.abort()
      await Promise.all([...this.sessions.values()].map(async session => { await session.close() }))
      throw error
    }
    let beats = 0
    this.heartbeatTimer = setInterval(() => {
      for (const session of this.sessions.values()) session.heartbeat(this.epochValue)
      // Every 20 heartbeats (2 s by default), revisit the automatic profile.
      if (this.options.profile === 'auto' && ++beats % 20 === 5) this.adaptProfile()
    }, this.options.heartbeatMs ?? 100)
    this.loop = this.run()
  }

  /** Wait until every backup acknowledged the initial full epoch. */
  async initialSync (options: { signal?: AbortSignal, onProgress?: (acked: number, total: number) => void } = {}): Promise<void> {
    const sessions = [...this.sessions.values()]
    await Promise.all(sessions.map(async session => { await this.waitForAck(session.backup, 1, options.signal) }))
    options.onProgress?.(sessions.length, sessions.length)
    if (this.stateValue === 'syncing') this.stateValue = 'replicating'
  }

  /** Resolves when `backup` has acknowledged `epoch` (or a later one). */
  async waitForAck (backup: string, epoch: number, signal?: AbortSignal): Promise<void> {
    const session = this.sessions.get(backup)
    if (session == null) throw new UnknownBackupError(`${backup} is not a backup of ${this.vmId}`)
    if (session.ackedEpoch >= epoch) return
    await new Promise<void>((resolve, reject) => {
      const off = this.on('ack', (ack) => {
        if (ack.backup === backup && ack.epoch >= epoch) finish()
      })
      const stopped = this.controller.signal
      const onAbort = (): void => { finish(signal?.reason ?? new ReplicationStoppedError('aborted')) }
      const stopAbort = (): void => { finish(new ReplicationStoppedError('replication stopped')) }
      function finish (error?: unknown): void {
        off()
        signal?.removeEventListener('abort', onAbort)
        stopped.removeEventListener('abort', stopAbort)
        if (error != null) reject(error)
        else resolve()
      }
      if (signal?.aborted === true) { onAbort(); return }
      if (stopped.aborted) { stopAbort(); return }
      signal?.addEventListener('abort', onAbort)
      stopped.addEventListener('abort', stopAbort, { once: true })
    })
  }

  private async run (): Promise<void> {
    const signal = this.controller.signal
    while (!signal.aborted) {
      const started = Date.now()
      if (!this.holdLoop) {
        const step = this.step()
        this.stepping = step.catch(() => {})
        try {
          await step
        } catch (error) {
          if (signal.aborted) return
          this.logger.error('epoch %d failed: %s', this.epochValue, (error as Error).message)
          this.stateValue = 'failed'
          return
        }
      }
      await sleep(Math.max(0, this.epochIntervalMs - (Date.now() - started)), signal)
    }
  }

  /** One turn of the loop: apply the policy, then take and queue an epoch unless paused. */
  private async step (): Promise<void> {
    const backlog = this.backlogBytes()
    if (this.emergency === 'best-effort') {
      for (const session of this.sessions.values()) {
        if (!session.resyncing && decideBackup(this.emergency, this.limits, session.backlogBytes) === 'drop-to-resync') {
          this.logger.warn('backup %s lags by %d bytes: dropping it to a full resync', session.backup, session.backlogBytes)
          session.dropToResync()
        }
      }
    }
    const decision = decideGuest(this.emergency, this.limits, backlog, this.pausedByPolicy)
    if (decision === 'pause') {
      this.logger.warn('backlog %d bytes reached the limit: pausing the guest', backlog)
      await this.guest.pause()
      this.pausedByPolicy = true
      this.stateValue = 'paused'
      return
    }
    if (decision === 'stay-paused') return
    if (decision === 'resume') {
      this.guest.resume()
      this.pausedByPolicy = false
      if (this.stateValue === 'paused') this.stateValue = 'replicating'
    }
    const throttle = throttleFor(this.throttleCurve, backlog)
    if (Math.abs(throttle - this.throttleValue) > 0.005) {
      this.throttleValue = throttle
      this.guest.setThrottle(throttle)
    }
    const full = [...this.sessions.values()].some(session => session.awaitingFull)
    await this.runEpoch(full)
  }

  private async takeCheckpoint (epoch: number, full: boolean): Promise<{ checkpoint: Checkpoint, memoryHash?: Uint8Array }> {
    if (this.options.verifyEpochs !== true) {
      return { checkpoint: full ? await this.guest.fullCheckpoint(epoch) : await this.guest.checkpoint(epoch) }
    }
    await this.guest.pause()
    try {
      const checkpoint = full ? await this.guest.fullCheckpoint(epoch) : await this.guest.checkpoint(epoch)
      const memoryHash = new Uint8Array(createHash('sha256').update(this.guest.memory()).digest())
      return { checkpoint, memoryHash }
    } finally {
      if (!this.pausedByPolicy && this.stateValue !== 'migrating') this.guest.resume()
    }
  }

  private async runEpoch (full: boolean, options: { handoverTo?: string } = {}): Promise<EncodedEpoch> {
    const epoch = this.epochValue + 1
    const started = performance.now()
    const { checkpoint, memoryHash } = options.handoverTo != null
      ? { checkpoint: await this.guest.checkpoint(epoch), memoryHash: undefined }
      : await this.takeCheckpoint(epoch, full)
    const checkpointMs = performance.now() - started
    this.epochValue = epoch
    const encoded = this.encoder.encode(checkpoint, { handover: options.handoverTo != null })
    const record: EpochRecord = {
      epoch,
      full: encoded.full,
      pages: encoded.pages,
      zeroPages: encoded.zeroPages,
      deltaPages: encoded.deltaPages,
      bytes: encoded.bytes,
      rawBytes: encoded.rawBytes,
      guestCounter: encoded.guestCounter,
      memoryHash,
      checkpointMs
    }
    // Listeners see the epoch before any acknowledgement of it can arrive.
    for (const listener of this.listeners.epoch) listener(record)
    if (options.handoverTo != null) {
      this.sessions.get(options.handoverTo)?.enqueue(encoded)
    } else {
      for (const session of this.sessions.values()) session.enqueue(encoded)
    }
    this.epochMeter.add(1)
    if (!encoded.full) this.pageMeter.add(encoded.pages)
    return encoded
  }

  /** Apply the LAN/WAN profile of the smallest round trip the links measured (explicit options win). */
  private adaptProfile (): void {
    let rtt: number | undefined
    for (const session of this.sessions.values()) {
      const sessionRtt = session.minRttMs()
      if (sessionRtt != null && (rtt == null || sessionRtt > rtt)) rtt = sessionRtt
    }
    if (rtt == null) return
    const profile = profileForRtt(rtt)
    const previous = this.profileValue
    if (previous != null && previous.name === profile.name && Math.abs(previous.windowBytes - profile.windowBytes) < previous.windowBytes / 4) return
    this.profileValue = profile
    if (this.options.epochIntervalMs == null) this.epochIntervalMs = profile.epochIntervalMs
    if (this.options.stripeBytes == null) this.encoder.setStripeBytes(profile.stripeBytes)
    if (this.options.windowBytes == null) for (const session of this.sessions.values()) session.setWindow(profile.windowBytes)
    this.logger.info('network profile %s for %s (round trip %s ms): epochs every %d ms, window %d bytes', profile.name, this.vmId, rtt.toFixed(2), this.epochIntervalMs, profile.windowBytes)
  }

  /** The LAN/WAN profile in force, if any. */
  get profile (): NetworkProfile | undefined {
    return this.profileValue
  }

  /** The largest backlog among the backups that are not being resynced. */
  backlogBytes (): number {
    let worst = 0
    for (const session of this.sessions.values()) {
      if (this.emergency === 'best-effort' && session.resyncing) continue
      worst = Math.max(worst, session.backlogBytes)
    }
    return worst
  }

  status (): ReplicationStatus {
    const now = Date.now()
    const backups = [...this.sessions.values()].map(session => session.status(now))
    let bytesPerS = 0
    for (const session of this.sessions.values()) bytesPerS += session.bytesPerS(now)
    return {
      vmId: this.vmId,
      state: this.stateValue,
      primary: this.options.node.peerId.toString(),
      epoch: this.epochValue,
      epochsPerS: this.epochMeter.perSecond(now),
      dirtyPagesPerS: this.pageMeter.perSecond(now),
      bytesPerS,
      guestCounter: this.guest.guestCounter(),
      throttle: this.throttleValue,
      backlogBytes: this.backlogBytes(),
      profile: this.profileValue?.name,
      backups,
      links: backups.flatMap(backup => backup.links)
    }
  }

  /**
   * Two-phase migration to one of the backups: converge (epochs back to back until one is small,
   * each acknowledged by the target), then stop-and-copy (pause, last epoch with the vCPU, the
   * target applies it and resumes the guest). The guest here is stopped afterwards.
   */
  async migrate (target: string, options: MigrationOptions = {}): Promise<MigrationReport> {
    const session = this.sessions.get(target)
    if (session == null) throw new UnknownBackupError(`${target} is not a backup of ${this.vmId}`)
    if (this.stateValue === 'stopped' || this.stateValue === 'migrated') throw new ReplicationStoppedError(`replication is ${this.stateValue}`)
    const convergeBytes = options.convergeBytes ?? 256 * 1024
    const maxRounds = options.maxRounds ?? 40
    const autoConverge = options.autoConverge ?? { rounds: 5, step: 0.2 }
    const signal = options.signal
    this.holdLoop = true
    await this.stepping
    this.stateValue = 'migrating'
    try {
      if (this.pausedByPolicy) {
        this.guest.resume()
        this.pausedByPolicy = false
      }
      await this.waitForAck(target, this.epochValue, signal)
      let rounds = 0
      for (;;) {
        rounds++
        const encoded = await this.runEpoch(false)
        options.onProgress?.({ phase: 'converge', round: rounds, dirtyPages: encoded.pages })
        await this.waitForAck(target, encoded.epoch, signal)
        if (encoded.bytes <= convergeBytes || rounds >= maxRounds) break
        if (autoConverge !== false && rounds % autoConverge.rounds === 0 && this.throttleValue < 0.9) {
          this.throttleValue = Math.min(0.9, this.throttleValue + autoConverge.step)
          this.guest.setThrottle(this.throttleValue)
          this.logger.info('migration of %s not converging (%d bytes per round): throttle %d%%', this.vmId, encoded.bytes, Math.round(this.throttleValue * 100))
        }
      }
      const resumed = new Promise<void>((resolve) => { this.resumedWaiters.set(target, resolve) })
      const pausedAt = performance.now()
      await this.guest.pause()
      const stoppedAt = performance.now()
      await options.handOverLease?.()
      const last = await this.runEpoch(false, { handoverTo: target })
      const copiedAt = performance.now()
      options.onProgress?.({ phase: 'stop-and-copy', round: rounds + 1, dirtyPages: last.pages })
      const timeout = AbortSignal.timeout(options.handoverTimeoutMs ?? 5000)
      const timedOut = new Promise<'timeout'>((resolve) => {
        const onTimeout = (): void => { resolve('timeout') }
        timeout.addEventListener('abort', onTimeout, { once: true })
        signal?.addEventListener('abort', onTimeout, { once: true })
      })
      const outcome = await Promise.race([resumed.then(() => 'resumed' as const), timedOut])
      this.resumedWaiters.delete(target)
      if (outcome !== 'resumed') {
        // Run here again only with the lease back: if the target took it, it runs there.
        if (await options.reclaimLease?.().catch(() => false) === true) {
          this.stateValue = 'replicating'
          this.holdLoop = false
          this.guest.resume()
          throw new MigrationFailedError(`${target} did not confirm the resume of ${this.vmId} at epoch ${last.epoch}; the guest runs here again (lease taken back)`)
        }
        this.stateValue = 'failed'
        throw new MigrationFailedError(`${target} did not confirm the resume of ${this.vmId} at epoch ${last.epoch}; the guest stays paused here so it cannot run twice`)
      }
      const resumedAt = performance.now()
      const downtimeMs = resumedAt - pausedAt
      options.onProgress?.({ phase: 'done', round: rounds + 1, dirtyPages: last.pages })
      this.stateValue = 'migrated'
      // The other backups followed this primary; the target decides who backs it up now.
      await this.shutdown({ release: [...this.sessions.keys()].filter(peer => peer !== target) })
      await this.guest.stop()
      return {
        target,
        rounds,
        finalPages: last.pages,
        finalBytes: last.bytes,
        epoch: last.epoch,
        downtimeMs,
        pauseMs: stoppedAt - pausedAt,
        checkpointMs: copiedAt - stoppedAt,
        handoverMs: resumedAt - copiedAt,
        throttle: this.throttleValue,
        guestCounter: last.guestCounter
      }
    } catch (error) {
      if (this.stateValue === 'migrating') {
        this.stateValue = 'replicating'
        this.holdLoop = false
      }
      throw error
    }
  }

  private async shutdown (options: { release?: string[] } = {}): Promise<void> {
    this.controller.abort()
    if (this.heartbeatTimer != null) clearInterval(this.heartbeatTimer)
    await this.loop
    await Promise.all([...this.sessions.values()].map(async session => {
      if (options.release?.includes(session.backup) === true) await session.release()
      else await session.close()
    }))
  }

  /**
   * Stop replicating (the guest keeps running; stopping it is the caller's choice). With
   * `release`, the backups drop their replicas (the VM is being stopped for good); without it
   * they keep them and, silent primary, may take over.
   */
  async stop (options: { release?: boolean } = {}): Promise<void> {
    if (this.stateValue === 'stopped') return
    if (this.stateValue !== 'migrated') this.stateValue = 'stopped'
    if (this.pausedByPolicy) {
      this.guest.resume()
      this.pausedByPolicy = false
    }
    await this.shutdown({ release: options.release === true ? [...this.sessions.keys()] : [] })
  }
}
