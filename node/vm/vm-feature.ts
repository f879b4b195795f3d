// The daemon's side of RAM replication: the node's replication service (link forwarder for
// everyone, backup host where /dev/kvm opens), the VMs this daemon runs (vCPU on koffi's worker
// thread), the guests it took over (failover, migration), and the admin API behind `mycelium vm`.
import { format } from 'node:util'
import {
  ramReplication, startGuest, engineRestorer, engineUnavailable, defaultEngine, allocateGuestMemory, namedThrottleCurve,
  VmNotFoundError, UnknownBackupError, MigrationFailedError,
  type RamReplication, type RunningGuest, type GuestEngine, type PrimaryReplication, type ReplicatedGuest, type ReplicaStatus, type ReplicationStatus,
  type EmergencyMode, type ReplicationLogger, type MigrationReport
} from '../../ram-replication/index.ts'
import { toHex } from '../../crypto/index.ts'
import { protocolPrefix } from '../membership/index.ts'
import { ApiError, type Routes } from '../api/index.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import { placeReplicas, PlacementError } from './replica-placement.ts'
import { parseRunRequest, type RunRequest } from './run-request.ts'

/** Silence from a primary (all links) after which its backup resumes the guest. */
const PRIMARY_TIMEOUT_MS = 750
const MAX_REMEMBERED_HASHES = 1024
const BACKLOG_LIMIT_BYTES = 256 * 1024 * 1024

interface Progress { done: number, total: number, finished: boolean }

interface RunningVm {
  guest: RunningGuest
  replication: PrimaryReplication
  request: RunRequest
  initialSync: Progress & { error?: string }
  migration?: { phase: string, round: number, dirtyPages: number }
  /** Per-epoch memory hashes (with verifyEpochs): the primary's, and the backups' verdicts. */
  hashes: Map<number, string>
  verify: { equal: number, different: number, lastEqualEpoch: number }
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
  // Hashing every applied epoch costs a pass over the replica: only when asked for (diagnostics, tests).
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
      targets = placeReplicas(ctx.peers(), { backups: request.backups, links: request.links, pinned: request.pinnedBackups })
    } catch (error) {
      if (error instanceof PlacementError) throw new ApiError(409, error.message)
      throw error
    }
    const guest = await startGuest(engine, { memoryBytes: request.memoryMb * 1024 * 1024, workload: { pattern: request.pattern, dirtyRate: request.dirtyRate } })
    let replication: PrimaryReplication
    try {
      replication = await service.replicate(guest, {
        backups: targets,
        throttle: namedThrottleCurve(request.throttle, BACKLOG_LIMIT_BYTES),
        emergency: request.emergency as EmergencyMode,
        profile: 'auto',
        verifyEpochs: request.verifyEpochs
      })
    } catch (error) {
      await guest.stop()
      throw error
    }
    const vm: RunningVm = {
      guest,
      replication,
      request,
      initialSync: { done: 0, total: 0, finished: false },
      hashes: new Map(),
      verify: { equal: 0, different: 0, lastEqualEpoch: 0 }
    }
    replication.on('epoch', (epoch) => {
      if (epoch.memoryHash == null) return
      vm.hashes.set(epoch.epoch, toHex(epoch.memoryHash))
      if (vm.hashes.size > MAX_REMEMBERED_HASHES) vm.hashes.delete(vm.hashes.keys().next().value!)
    })
    replication.on('ack', (ack) => {
      const expected = vm.hashes.get(ack.epoch)
      if (expected == null || ack.memoryHash == null) return
      if (expected === toHex(ack.memoryHash)) {
        vm.verify.equal++
        vm.verify.lastEqualEpoch = Math.max(vm.verify.lastEqualEpoch, ack.epoch)
      } else {
        vm.verify.different++
        ctx.log.error({ vmId: guest.vmId, backup: ack.backup, epoch: ack.epoch }, 'backup memory differs from the primary at an acknowledged epoch')
      }
    })
    running.set(guest.vmId, vm)
    replication.initialSync({ onProgress: (done, total) => { vm.initialSync.done = done; vm.initialSync.total = total } }).then(() => {
      vm.initialSync.finished = true
    }, (error: Error) => {
      vm.initialSync.error = error.message
      ctx.log.warn({ vmId: guest.vmId, err: error.message }, 'initial sync did not complete')
    })
    ctx.log.info({ vmId: guest.vmId, memoryMb: request.memoryMb, engine, backups: targets }, 'VM started')
    return { vmId: guest.vmId, engine, backups: targets.map(target => ({ peerId: target.peerId, via: target.via.map(via => via ?? null) })) }
  }

  function takenOverStatus (vmId: string, vm: TakenOverVm): Record<string, unknown> {
    return {
      vmId,
      role: 'primary',
      state: 'running',
      primary: selfId(),
      backups: [],
      epoch: vm.fromEpoch,
      epochsPerS: 0,
      dirtyPagesPerS: 0,
      bytesPerS: 0,
      links: [],
      guestCounter: vm.guest.guestCounter(),
      engine: engineOf(vm.guest),
      takenOver: {
        how: vm.how,
        from: vm.origin,
        epoch: vm.fromEpoch,
        guestCounter: vm.counterAtResume,
        resumedAt: vm.resumedAt,
        primaryLostAt: vm.primaryLostAt
      }
    }
  }

  function status (vmId: string): Record<string, unknown> {
    const service = requireRam()
    const adopted = takenOver.get(vmId)
    if (adopted !== undefined) return takenOverStatus(vmId, adopted)
    let s: ReplicationStatus | ReplicaStatus
    try {
      s = service.status(vmId)
    } catch (error) {
      if (error instanceof VmNotFoundError) throw new ApiError(404, `no VM ${vmId} runs or is backed up on this node (see mycelium vm ls)`)
      throw error
    }
    const vm = running.get(vmId)
    if (vm !== undefined && 'backups' in s) {
      return { ...s, role: 'primary', engine: vm.guest.engine, memoryBytes: vm.guest.memoryBytes, initialSync: vm.initialSync, migration: vm.migration, verify: vm.request.verifyEpochs ? vm.verify : undefined }
    }
    const replica = s as ReplicaStatus
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
      replica
    }
  }

  function list (): Array<Record<string, unknown>> {
    const service = requireRam()
    return service.list().map(entry => {
      const adopted = takenOver.get(entry.vmId)
      if (adopted !== undefined) return { vmId: entry.vmId, role: 'primary', state: 'running', epoch: adopted.fromEpoch, guestCounter: adopted.guest.guestCounter(), memoryBytes: entry.memoryBytes, engine: engineOf(adopted.guest) }
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
    if (adopted !== undefined) {
      takenOver.delete(vmId)
      await adopted.guest.stop()
      // The replica's memory was the guest's: the entry goes with it.
      service.replicas?.drop(vmId)
      return
    }
    if (!running.has(vmId)) throw new ApiError(404, `VM ${vmId} does not run on this node`)
    running.delete(vmId)
    await service.stopVm(vmId)
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
        resumeOnPrimaryLoss: true,
        hashMemory: verifyReplicas,
        restoreGuest: engineRestorer(),
        allocateMemory: allocateGuestMemory,
        logger
      })(ctx.host())
      ram.replicas?.on('primaryLost', (replica) => { lostAt.set(replica.vmId, Date.now()) })
      ram.replicas?.on('resumed', (vmId, guest) => {
        const replica = ram?.replicas?.status().find(entry => entry.vmId === vmId)
        const primaryLostAt = lostAt.get(vmId)
        lostAt.delete(vmId)
        takenOver.set(vmId, {
          guest,
          how: primaryLostAt === undefined ? 'migration' : 'failover',
          origin: replica?.origin ?? '',
          fromEpoch: replica?.appliedEpoch ?? 0,
          counterAtResume: replica?.guestCounter ?? guest.guestCounter(),
          resumedAt: Date.now(),
          primaryLostAt
        })
        ctx.log.info({ vmId, from: replica?.origin, epoch: replica?.appliedEpoch }, primaryLostAt === undefined ? 'VM migrated here and runs' : 'primary lost: VM resumed here')
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
