// The daemon's side of RAM replication: the node's replication service (link forwarder for
// everyone, backup host where /dev/kvm opens), the VMs this daemon runs (vCPU on koffi's worker
// thread), the guests it took over (failover, migration), and the admin API behind `mycelium vm`.
import { format } from 'node:util'
import { randomUUID } from 'node:crypto'
import {
  ramReplication, startGuest, cannotHost, verifyEpochHashes, type EpochVerdicts, engineRestorer, engineUnavailable, defaultEngine, allocateGuestMemory, namedThrottleCurve,
  VmNotFoundError, UnknownBackupError, MigrationFailedError, LeaseUnavailableError,
  type RamReplication, type RunningGuest, type GuestEngine, type PrimaryReplication, type BackupTarget, type ReplicatedGuest, type ReplicaStatus, type ReplicationStatus,
  type EmergencyMode, type ReplicationLogger, type MigrationReport, type TakeOver
} from '../../ram-replication/index.ts'
import { protocolPrefix } from '../../membership/index.ts'
import { ApiError, type Routes } from '../api/index.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import { placeReplicas, chooseWitnesses, PlacementError } from './replica-placement.ts'
import { fileVoterStore, LEASE_VOTES_FILE } from './lease-votes-file.ts'
import { parseRunRequest, type RunRequest } from './run-request.ts'

/** Silence from a primary (all links) after which its replica is shown as `primary-lost` (failover itself goes by the lease). */
const PRIMARY_TIMEOUT_MS = 750
const BACKLOG_LIMIT_BYTES = 256 * 1024 * 1024

interface Progress { done: number, total: number, finished: boolean }

interface RunningVm {
  guest: RunningGuest
  replication: PrimaryReplication
  request: RunRequest
  initialSync: Progress & { error?: string }
  migration?: { phase: string, round: number, dirtyPages: number }
  /** With verifyEpochs: the backups' hashes against the primary's at acknowledged epochs. */
  verify: EpochVerdicts
  /** Settles when the first full sync to the backups is done (or failed). */
  synced: Promise<void>
}

interface TakenOverVm {
  guest: ReplicatedGuest
  /** `failover`: the primary went silent; `migration`: the primary handed the guest over. */
  how: 'failover' | 'migration'
  origin: string
  fromEpoch: number
  counterAtResume: number
  resumedAt: number
  primaryLostAt?: number
  /** ms from the lease running out (on this node's vote) to the guest running here */
  takeOverMs: number
  /** re-protection: new backups chosen and synced without being asked */
  reprotection: { state: 'placing' | 'syncing' | 'protected' | 'unprotected', backups: string[], error?: string }
}

function replicationLogger (ctx: DaemonContext): ReplicationLogger {
  const log = ctx.log.child({ feature: 'vm' })
  return {
    info: (message, ...args) => { log.info(format(message, ...args)) },
    warn: (message, ...args) => { log.warn(format(message, ...args)) },
    debug: (message, ...args) => { log.debug(format(message, ...args)) },
    error: (message, ...args) => { log.error(format(message, ...args)) }
  }
}

/** The engine a guest runs on, as far as this node can tell ('kvm' or 'interpreted'). */
function engineOf (guest: ReplicatedGuest): string | undefined {
  const engine = (guest as Partial<RunningGuest>).engine
  return typeof engine === 'string' ? engine : undefined
}

function vmIdOf (value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(value)) throw new ApiError(400, 'vmId must be a VM id (see mycelium vm ls)')
  return value
}

function record (body: unknown): Record<string, unknown> {
  return body !== null && typeof body === 'object' ? body as Record<string, unknown> : {}
}

export interface VmFeature extends DaemonFeature {
  /** The node's replication service (undefined before start and after stop). */
  replication: () => RamReplication | undefined
}

export function vmFeature (): VmFeature {
  /** Why KVM cannot run guests here (undefined: it can); guests then run on the interpreter. */
  let kvmMissing: string | undefined
  let started = false
  let ram: RamReplication | undefined
  let context: DaemonContext | undefined
  const running = new Map<string, RunningVm>()
  const takenOver = new Map<string, TakenOverVm>()
  const lostAt = new Map<string, number>()
  // Hashing applied epochs costs passes over the replica (one after another while epochs come): only when asked for (diagnostics, tests).
  const verifyReplicas = process.env.MYCELIUM_VM_VERIFY_EPOCHS === '1'

  function requireRam (): RamReplication {
    if (!started || ram === undefined) throw new ApiError(503, 'the VM service is not running yet')
    return ram
  }

  /** The engine a run request gets: the one asked for if it can run here (409 otherwise), else the node's default. */
  function engineFor (request: RunRequest): GuestEngine {
    const engine = request.engine ?? (kvmMissing === undefined ? 'kvm' : 'interpreted')
    const missing = engine === 'kvm' ? kvmMissing : engineUnavailable(engine)
    if (missing !== undefined) throw new ApiError(409, `the ${engine} engine cannot run on this node: ${missing} (use --engine interpreted)`)
    return engine
  }

  function selfId (): string {
    return context!.host().peerId.toString()
  }

  async function run (request: RunRequest): Promise<{ vmId: string, engine: GuestEngine, backups: Array<{ peerId: string, via: Array<string | null> }> }> {
    const service = requireRam()
    const ctx = context!
    const engine = engineFor(request)
    let targets
    try {
      const peers = ctx.peers()
      targets = placeReplicas(peers, { backups: request.backups, links: request.links, pinned: request.pinnedBackups, unable: await unableToHost(peers, engine, request.memoryMb * 1024 * 1024) })
    } catch (error) {
      if (error instanceof PlacementError) throw new ApiError(409, error.message)
      throw error
    }
    // The guest runs only under a lease granted by a quorum of its group: it starts paused,
    // and the keeper runs it and fences it from now on.
    const vmId = randomUUID()
    const witnesses = chooseWitnesses(ctx.peers(), targets.map(t => t.peerId))
    let holder
    try {
      holder = await service.acquireLease(vmId, [...targets.map(t => t.peerId), ...witnesses])
    } catch (error) {
      if (error instanceof LeaseUnavailableError) throw new ApiError(409, error.message)
      throw error
    }
    const started = await startGuest(engine, { vmId, paused: true, memoryBytes: request.memoryMb * 1024 * 1024, workload: { pattern: request.pattern, dirtyRate: request.dirtyRate, ...(request.reportEvery === undefined ? {} : { reportEvery: request.reportEvery }) } })
    const guest = service.keepLease(holder, started)
    guest.resume()
    try {
      await protect(guest, request, targets)
    } catch (error) {
      service.keeper(vmId)?.stop()
      await guest.stop()
      throw error
    }
    ctx.log.info({ vmId: guest.vmId, memoryMb: request.memoryMb, engine, backups: targets, witnesses }, 'VM started')
    return { vmId: guest.vmId, engine, backups: targets.map(target => ({ peerId: target.peerId, via: target.via.map(via => via ?? null) })) }
  }

  /** The peers that could not resume a guest of this engine and size, and why (asked over the network). */
  async function unableToHost (peers: Array<{ peerId: string }>, engine: GuestEngine, memoryBytes: number): Promise<Map<string, string>> {
    const unable = new Map<string, string>()
    for (const [peer, capability] of await requireRam().capabilities(peers.map(p => p.peerId))) {
      const why = capability instanceof Error ? `did not say what it can host (${capability.message})` : cannotHost(capability, { engine, memoryBytes })
      if (why !== undefined) unable.set(peer, why)
    }
    return unable
  }

  /** Replicate a guest that runs here to `targets`, and keep the record `vm status` shows. */
  async function protect (guest: RunningGuest, request: RunRequest, targets: BackupTarget[]): Promise<RunningVm> {
    const service = requireRam()
    const ctx = context!
    const replication = await service.replicate(guest, {
      backups: targets,
      throttle: namedThrottleCurve(request.throttle, BACKLOG_LIMIT_BYTES),
      emergency: request.emergency as EmergencyMode,
      profile: 'auto',
      verifyEpochs: request.verifyEpochs
    })
    const vm: RunningVm = {
      guest,
      replication,
      request,
      initialSync: { done: 0, total: 0, finished: false },
      verify: verifyEpochHashes(replication, (backup, epoch) => {
        ctx.log.error({ vmId: guest.vmId, backup, epoch }, 'backup memory differs from the primary at an acknowledged epoch')
      }),
      synced: Promise.resolve()
    }
    running.set(guest.vmId, vm)
    vm.synced = replication.initialSync({ onProgress: (done, total) => { vm.initialSync.done = done; vm.initialSync.total = total } }).then(() => {
      vm.initialSync.finished = true
    }, (error: Error) => {
      vm.initialSync.error = error.message
      ctx.log.warn({ vmId: guest.vmId, err: error.message }, 'initial sync did not complete')
    })
    return vm
  }

  /**
   * A guest resumed here (its lease passed to this node): record it, then re-protect it without
   * being asked: new backups (never the node it came from), a full sync, and a lease group made
   * of this node, the new backups and witnesses. Retried while no backup can be placed.
   */
  function adopt (takeOver: TakeOver): void {
    const ctx = context!
    const primaryLostAt = lostAt.get(takeOver.vmId)
    lostAt.delete(takeOver.vmId)
    const vm: TakenOverVm = {
      guest: takeOver.guest,
      how: takeOver.how,
      origin: takeOver.from,
      fromEpoch: takeOver.epoch,
      counterAtResume: takeOver.guestCounter,
      resumedAt: Date.now(),
      primaryLostAt,
      takeOverMs: Math.round(takeOver.resumedAt - takeOver.leaseFreeAt),
      reprotection: { state: 'placing', backups: [] }
    }
    takenOver.set(takeOver.vmId, vm)
    ctx.log.info({ vmId: takeOver.vmId, from: takeOver.from, epoch: takeOver.epoch, takeOverMs: vm.takeOverMs }, vm.how === 'failover' ? 'lease of a lost primary passed here: VM resumed' : 'VM migrated here and runs')
    const attempt = async (): Promise<void> => {
      if (takenOver.get(takeOver.vmId) !== vm || ram === undefined) return
      const request = parseRunRequest({})
      const guest = takeOver.guest as RunningGuest
      try {
        const peers = ctx.peers().filter(p => p.peerId !== takeOver.from)
        // a retry keeps the backups already placed and synced, and only tries the lease again
        let protectedVm = running.get(takeOver.vmId)
        if (protectedVm === undefined) {
          const targets = placeReplicas(peers, { backups: request.backups, links: request.links, unable: await unableToHost(peers, guest.engine, guest.memoryBytes) })
          vm.reprotection = { state: 'syncing', backups: targets.map(t => t.peerId) }
          protectedVm = await protect(guest, request, targets)
        }
        await protectedVm.synced
        if (!protectedVm.initialSync.finished) throw new Error(`the new backups did not sync: ${protectedVm.initialSync.error ?? 'unknown error'}`)
        // the lease moves to the new backups only once they hold the guest's memory
        const backups = protectedVm.replication.status().backups.map(b => b.peerId)
        const why = await ram.regroupWhy(takeOver.vmId, [...backups, ...chooseWitnesses(peers, backups)])
        if (why !== undefined) throw new Error(why)
        vm.reprotection = { state: 'protected', backups }
        ctx.log.info({ vmId: takeOver.vmId, backups }, 'VM protected again: new backups synced, lease group moved to them')
      } catch (error) {
        vm.reprotection = { ...vm.reprotection, state: 'unprotected', error: (error as Error).message }
        ctx.log.warn({ vmId: takeOver.vmId, err: (error as Error).message }, 'VM not protected again yet: will try again')
        setTimeout(() => { void attempt() }, 2000).unref()
      }
    }
    void attempt()
  }

  function takeOverInfo (vm: TakenOverVm): Record<string, unknown> {
    return {
      how: vm.how,
      from: vm.origin,
      epoch: vm.fromEpoch,
      guestCounter: vm.counterAtResume,
      resumedAt: vm.resumedAt,
      primaryLostAt: vm.primaryLostAt,
      takeOverMs: vm.takeOverMs,
      reprotection: vm.reprotection
    }
  }

  function status (vmId: string): Record<string, unknown> {
    const service = requireRam()
    const adopted = takenOver.get(vmId)
    const vm = running.get(vmId)
    const lease = service.lease(vmId)
    if (adopted !== undefined && vm === undefined) {
      // resumed here, new backups not placed yet
      return {
        vmId,
        role: 'primary',
        state: 'running',
        primary: selfId(),
        backups: [],
        epoch: adopted.fromEpoch,
        epochsPerS: 0,
        dirtyPagesPerS: 0,
        bytesPerS: 0,
        links: [],
        guestCounter: adopted.guest.guestCounter(),
        memoryBytes: adopted.guest.memoryBytes,
        engine: engineOf(adopted.guest),
        lease,
        takenOver: takeOverInfo(adopted)
      }
    }
    let s: ReplicationStatus | ReplicaStatus
    try {
      s = service.status(vmId)
    } catch (error) {
      if (error instanceof VmNotFoundError) throw new ApiError(404, `no VM ${vmId} runs or is backed up on this node (see mycelium vm ls)`)
      throw error
    }
    if (vm !== undefined && 'backups' in s) {
      return {
        ...s,
        role: 'primary',
        engine: vm.guest.engine,
        memoryBytes: vm.guest.memoryBytes,
        initialSync: vm.initialSync,
        migration: vm.migration,
        verify: vm.request.verifyEpochs ? vm.verify : undefined,
        lease,
        ...(adopted === undefined ? {} : { takenOver: takeOverInfo(adopted) })
      }
    }
    const replica = s as ReplicaStatus
    const vote = service.leases.voter.view(vmId)
    return {
      vmId,
      role: 'backup',
      state: replica.state,
      primary: replica.origin,
      backups: [],
      epoch: replica.appliedEpoch,
      epochsPerS: 0,
      dirtyPagesPerS: 0,
      bytesPerS: 0,
      links: [],
      guestCounter: replica.guestCounter,
      memoryBytes: replica.memoryBytes,
      engine: service.replicas?.replica(vmId)?.engine,
      replica,
      // this node's vote: who holds the lease, and for how long on this node's clock
      lease: vote === undefined ? undefined : { term: vote.term, holder: vote.holder, voters: vote.group.voters, generation: vote.group.generation, remainingMs: Math.max(0, Math.round(vote.remainingMs)) }
    }
  }

  function list (): Array<Record<string, unknown>> {
    const service = requireRam()
    return service.list().map(entry => {
      const adopted = takenOver.get(entry.vmId)
      if (adopted !== undefined && entry.role !== 'primary') return { vmId: entry.vmId, role: 'primary', state: 'running', epoch: adopted.fromEpoch, guestCounter: adopted.guest.guestCounter(), memoryBytes: entry.memoryBytes, engine: engineOf(adopted.guest) }
      const vm = running.get(entry.vmId)
      return { ...entry, engine: vm !== undefined ? vm.guest.engine : service.replicas?.replica(entry.vmId)?.engine }
    })
  }

  async function migrate (vmId: string, target: string): Promise<MigrationReport> {
    const service = requireRam()
    const vm = running.get(vmId)
    if (vm === undefined) throw new ApiError(404, `VM ${vmId} does not run on this node`)
    vm.migration = { phase: 'converge', round: 0, dirtyPages: 0 }
    try {
      const report = await service.migrate(vmId, target, { onProgress: (progress) => { vm.migration = { ...progress } } })
      running.delete(vmId)
      context!.log.info({ vmId, target, downtimeMs: report.downtimeMs }, 'VM migrated')
      return report
    } catch (error) {
      vm.migration = undefined
      if (error instanceof UnknownBackupError) throw new ApiError(409, `${target} is not a backup of ${vmId}: migrate to one of its backups (see mycelium vm status ${vmId})`)
      if (error instanceof MigrationFailedError) throw new ApiError(502, error.message)
      throw error
    }
  }

  async function stopVm (vmId: string): Promise<void> {
    const service = requireRam()
    const adopted = takenOver.get(vmId)
    takenOver.delete(vmId)
    if (running.has(vmId)) {
      running.delete(vmId)
      await service.stopVm(vmId)
      service.replicas?.drop(vmId)
      return
    }
    if (adopted === undefined) throw new ApiError(404, `VM ${vmId} does not run on this node`)
    // resumed here and not yet protected again
    service.keeper(vmId)?.stop()
    await adopted.guest.stop()
    service.leases.voter.forget(vmId)
    // The replica's memory was the guest's: the entry goes with it.
    service.replicas?.drop(vmId)
  }

  return {
    name: 'vm',
    replication: () => ram,
    async start (ctx) {
      context = ctx
      kvmMissing = engineUnavailable('kvm')
      const logger = replicationLogger(ctx)
      ram = ramReplication({
        protocolPrefix: protocolPrefix(ctx.network.networkId),
        secretKey: ctx.secretKey,
        forward: true,
        // Every node can hold backups: a guest resumes on the engine it ran on (the interpreter runs anywhere).
        backup: true,
        primaryTimeoutMs: PRIMARY_TIMEOUT_MS,
        voterStore: fileVoterStore(ctx.home.path(LEASE_VOTES_FILE), ctx.log),
        hashMemory: verifyReplicas,
        restoreGuest: engineRestorer(),
        allocateMemory: allocateGuestMemory,
        logger
      })(ctx.host())
      ram.replicas?.on('primaryLost', (replica) => { lostAt.set(replica.vmId, Date.now()) })
      ram.onTakeOver((takeOver) => { adopt(takeOver) })
      ram.onSuperseded((vmId, by) => {
        running.delete(vmId)
        takenOver.delete(vmId)
        ctx.log.warn({ vmId, term: by.term, holder: by.holder }, 'another node holds this VM\'s lease now: the guest here was stopped')
      })
      await ram.start()
      started = true
      if (kvmMissing !== undefined) ctx.log.info({ reason: kvmMissing, defaultEngine: defaultEngine() }, 'no usable /dev/kvm: VMs here run on the interpreted engine')
    },
    async stop () {
      for (const vm of takenOver.values()) await vm.guest.stop().catch(() => {})
      takenOver.clear()
      running.clear()
      started = false
      await ram?.stop()
      ram = undefined
    },
    status () {
      return ram === undefined ? {} : { vms: running.size + takenOver.size }
    },
    routes: () => ({
      'POST /vm/run': async ({ body }) => await run(parseRunRequest(body)),
      'GET /vm/ls': () => list(),
      'GET /vm/status': ({ query }) => status(vmIdOf(query.get('vmId'))),
      'POST /vm/migrate': async ({ body }) => {
        const b = record(body)
        const to = b.to
        if (typeof to !== 'string' || to === '') throw new ApiError(400, 'to must be the peer id of one of the VM\'s backups')
        return await migrate(vmIdOf(b.vmId), to)
      },
      'POST /vm/stop': async ({ body }) => { await stopVm(vmIdOf(record(body).vmId)); return { stopped: true } }
    } satisfies Routes)
  }
}
