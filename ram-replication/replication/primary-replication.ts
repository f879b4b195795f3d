// The primary's epoch loop. Each epoch: checkpoint the guest (it pauses only for the copy),
// encode the dirty pages once, queue the stripes to every backup, and let the links carry them
// while the guest runs on (Remus-style). Between epochs the policy turns the backlog
// (bytes no backup has acknowledged) into guest slowdown, and past its limit into the
// emergency mode: pause the guest, or drop a lagging backup to a full resync. Migration to a
// backup is in migration.ts; this class lends it the loop, the epochs and the guest.
import type { Checkpoint, ReplicatedGuest } from '../checkpoint.ts'
import { hashMemoryInTurns } from '../memory-hash.ts'
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
import { ReplicationStoppedError, UnknownBackupError } from './errors.ts'
import { migrateGuest } from './migration.ts'
import type { MigrationHost, MigrationOptions, MigrationReport } from './migration.ts'

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
   * epoch (to compare with a backup's memory hash). Costs a pass over guest memory per epoch,
   * taken in turns of the event loop: the guest stays paused for all of it.
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

interface Listeners {
  ack: Array<(ack: EpochAcknowledgement) => void>
  epoch: Array<(record: EpochRecord) => void>
  /** A backup resumed the guest (after a handover epoch). */
  resumed: Array<(backup: string, epoch: number) => void>
  /** A backup echoed a heartbeat announcing `epoch`. */
  echo: Array<(backup: string, epoch: number) => void>
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
  private readonly listeners: Listeners = { ack: [], epoch: [], resumed: [], echo: [] }
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
  private migrating = false

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
        onResumed: (backup, epoch) => { this.onResumed(backup, epoch) },
        onEcho: (backup, epoch) => { for (const listener of [...this.listeners.echo]) listener(backup, epoch) },
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
      const memoryHash = await hashMemoryInTurns(this.guest.memory(), this.controller.signal)
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
    const encoded = await this.encoder.encodeInTurns(checkpoint, { handover: options.handoverTo != null })
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
   * Two-phase migration to one of the backups (migration.ts): converge, throttling the guest
   * while rounds do not shrink, then hand over. On success the guest runs at the target and is
   * stopped here; on any failure it runs on here, replicated as before.
   */
  async migrate (target: string, options: MigrationOptions = {}): Promise<MigrationReport> {
    if (!this.sessions.has(target)) throw new UnknownBackupError(`${target} is not a backup of ${this.vmId}`)
    if (this.migrating) throw new ReplicationStoppedError(`${this.vmId} is already migrating`)
    if (this.stateValue !== 'replicating' && this.stateValue !== 'paused') throw new ReplicationStoppedError(`replication is ${this.stateValue}`)
    this.migrating = true
    try {
      return await migrateGuest(this.migrationHost(), target, options)
    } finally {
      this.migrating = false
    }
  }

  private migrationHost (): MigrationHost {
    const subscribe = (list: Array<(backup: string, epoch: number) => void>) => (listener: (backup: string, epoch: number) => void): () => void => {
      list.push(listener)
      return () => {
        const index = list.indexOf(listener)
        if (index >= 0) list.splice(index, 1)
      }
    }
    // The migration's state lives in migration.ts; these hooks are the only per-migration state
    // here (holdLoop, the state, the throttle) and each has its way back on failure.
    return {
      vmId: this.vmId,
      guest: this.guest,
      logger: this.logger,
      epoch: () => this.epochValue,
      throttle: () => this.throttleValue,
      session: (peer) => this.sessions.get(peer),
      holdLoop: async () => {
        this.holdLoop = true
        await this.stepping
        this.stateValue = 'migrating'
        if (this.pausedByPolicy) {
          this.guest.resume()
          this.pausedByPolicy = false
        }
      },
      releaseLoop: () => {
        if (this.stateValue === 'migrating') this.stateValue = 'replicating'
        this.holdLoop = false
      },
      takeEpoch: async (handoverTo) => await this.runEpoch(false, { handoverTo }),
      waitForAck: async (backup, epoch, signal) => { await this.waitForAck(backup, epoch, signal) },
      setThrottle: (fraction) => {
        this.throttleValue = fraction
        this.guest.setThrottle(fraction)
      },
      onResumed: subscribe(this.listeners.resumed),
      onEcho: subscribe(this.listeners.echo),
      finish: async (target) => {
        this.stateValue = 'migrated'
        // The other backups followed this primary; the target decides who backs it up now.
        await this.shutdown({ release: [...this.sessions.keys()].filter(peer => peer !== target) })
        await this.guest.stop()
      }
    }
  }

  /**
   * A backup says the guest runs there. Expected at the end of a migration; outside one it is
   * a handover that timed out, was not fenced, and completed after all: the guest must not run
   * twice, so this copy stops (the target's, resumed from the handover epoch, is the one).
   */
  private onResumed (backup: string, epoch: number): void {
    for (const listener of [...this.listeners.resumed]) listener(backup, epoch)
    if (this.migrating || this.stateValue === 'migrated' || this.stateValue === 'stopped') return
    this.logger.error('%s resumed %s from handover epoch %d after that handover had failed here: stopping this copy', backup, this.vmId, epoch)
    this.stateValue = 'migrated'
    this.shutdown({ release: [...this.sessions.keys()].filter(peer => peer !== backup) })
      .then(async () => { await this.guest.stop() })
      .catch((error: Error) => { this.logger.error('stopping %s after the late handover failed: %s', this.vmId, error.message) })
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
