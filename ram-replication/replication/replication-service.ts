// Everything RAM replication runs on one node, as one service the daemon can start and stop:
// the rhizomorph forwarder, the backup side (replicas of other nodes' VMs), and the primaries
// of the VMs this node runs. The VMs themselves come from the VMM; this service replicates them.
import type { ReplicatedGuest } from '../checkpoint.ts'
import { StripeForwarder } from '../transport/stripe-forwarder.ts'
import { silentLogger } from '../transport/protocols.ts'
import type { ReplicationLogger, ReplicationNode } from '../transport/protocols.ts'
import { ReplicaHost } from '../backup/replica-host.ts'
import type { GuestRestorer, ReplicaStatus } from '../backup/replica-host.ts'
import { PrimaryReplication } from './primary-replication.ts'
import type { PrimaryReplicationOptions, ReplicationStatus } from './primary-replication.ts'
import { UnknownBackupError } from './errors.ts'
import { LeaseService } from '../lease/lease-service.ts'
import { LeaseFailover } from '../lease/lease-failover.ts'
import type { TakeOver } from '../lease/lease-failover.ts'
import { LeaseHolder } from '../lease/lease-holder.ts'
import { LeaseKeeper } from '../lease/lease-keeper.ts'
import type { LeaseKeeperStatus } from '../lease/lease-keeper.ts'
import type { VoterStore } from '../lease/lease-voter.ts'
import type { LeaseGroup, LeaseRequest } from '../lease/lease-terms.ts'
import { DEFAULT_LEASE_MS } from '../lease/lease-terms.ts'
import { fencedGuest } from '../lease/fenced-guest.ts'
import type { Fence } from '../lease/fenced-guest.ts'
import { freemem } from 'node:os'
import { CapabilityService } from '../backup/replica-capability.ts'
import type { ReplicaCapability } from '../backup/replica-capability.ts'
import { hostPageSize } from '../kvm/host-page-size.ts'
import { engineUnavailable } from '../vmm/engines.ts'
import { GUEST_ENGINES } from '../vmm/running-guest.ts'
import type { GuestEngine } from '../vmm/running-guest.ts'

export interface RamReplicationOptions {
  /** `/mycelium/<networkId>`: the protocols are `<prefix>/ram/stripe/2.0.0` and `<prefix>/ram/forward/1.0.0`. */
  protocolPrefix: string
  /** This node's Ed25519 secret (32 bytes): seals links end to end and opens sealed links. */
  secretKey?: Uint8Array
  /** Forward other nodes' links (rhizomorphs and sclerotia). */
  forward?: boolean
  maxForwards?: number
  /** Hold replicas of other nodes' VMs. */
  backup?: boolean
  maxReplicaBytes?: number
  primaryTimeoutMs?: number
  /** Backups hash a replica's memory after applied epochs (the newest, whenever no hash is under way) and report it (to compare with the primary's `verifyEpochs`). */
  hashMemory?: boolean
  /** The VMM's "start a guest from memory and vCPU state" (needed to take over a VM here). */
  restoreGuest?: GuestRestorer
  allocateMemory?: (bytes: number) => Uint8Array
  logger?: ReplicationLogger
  /** Lease length for the VMs this node runs or takes over (see ram-replication/lease). */
  leaseMs?: number
  /** Where this node's lease votes survive a restart (default: memory only). */
  voterStore?: VoterStore
}

/** No quorum of the VM's group granted this node the lease: the guest must not run here. */
export class LeaseUnavailableError extends Error {
  readonly name = 'LeaseUnavailableError'
}

export interface VmListing {
  vmId: string
  /** `primary`: the VM runs here; `backup`: this node holds a replica. */
  role: 'primary' | 'backup'
  state: string
  epoch: number
  guestCounter: number
  memoryBytes: number
  /** For a replica: the primary it follows. */
  origin?: string
}

export type ReplicateOptions = Omit<PrimaryReplicationOptions, 'node' | 'protocolPrefix' | 'guest' | 'logger'>

export class VmNotFoundError extends Error {
  readonly name = 'VmNotFoundError'
}

export class RamReplication {
  private readonly node: ReplicationNode
  private readonly options: RamReplicationOptions
  private readonly logger: ReplicationLogger
  readonly forwarder?: StripeForwarder
  readonly replicas?: ReplicaHost
  private readonly primaries = new Map<string, { replication: PrimaryReplication, guest: ReplicatedGuest }>()
  /** Every node votes on the leases of the groups that name it (witnesses included). */
  readonly leases: LeaseService
  /** What this node can host, answered to nodes that place backups. */
  readonly capability: CapabilityService
  private engines?: GuestEngine[]
  private readonly failover?: LeaseFailover
  private readonly keepers = new Map<string, LeaseKeeper>()
  private readonly takeOverListeners: Array<(takeOver: TakeOver) => void> = []
  private readonly supersededListeners: Array<(vmId: string, by: { term: number, holder?: string }) => void> = []

  constructor (node: ReplicationNode, options: RamReplicationOptions) {
    this.node = node
    this.options = options
    this.logger = options.logger ?? silentLogger
    if (options.forward !== false) {
      this.forwarder = new StripeForwarder(node, { protocolPrefix: options.protocolPrefix, maxForwards: options.maxForwards, logger: this.logger })
    }
    if (options.backup !== false) {
      this.replicas = new ReplicaHost(node, {
        protocolPrefix: options.protocolPrefix,
        maxReplicaBytes: options.maxReplicaBytes,
        primaryTimeoutMs: options.primaryTimeoutMs,
        hashMemory: options.hashMemory,
        secretKey: options.secretKey,
        restoreGuest: options.restoreGuest,
        allocateMemory: options.allocateMemory,
        takeOver: async (vmId, start) => {
          if (this.failover === undefined) return await start()
          return await this.failover.takeOverNow(vmId, start)
        },
        // A backup takes stripes only from the node its own vote says holds the VM's lease.
        admitOrigin: (vmId, origin) => {
          const view = this.leases.voter.view(vmId)
          return view === undefined ? undefined : view.holder === origin
        },
        logger: this.logger
      })
    }
    this.leases = new LeaseService(node, {
      protocolPrefix: options.protocolPrefix,
      logger: this.logger,
      ...(options.voterStore === undefined ? {} : { store: options.voterStore }),
      preferSelf: (request) => this.preferSelf(request)
    })
    this.capability = new CapabilityService(node, { protocolPrefix: options.protocolPrefix, capability: () => this.localCapability() })
    if (this.replicas !== undefined && options.restoreGuest !== undefined) {
      this.failover = new LeaseFailover({
        leases: this.leases,
        replicas: this.replicas,
        durationMs: this.leaseMs,
        logger: this.logger,
        onTakeOver: (takeOver) => {
          this.keepers.set(takeOver.vmId, takeOver.keeper)
          for (const listener of this.takeOverListeners) listener(takeOver)
        },
        onSuperseded: (vmId, by) => { this.standDown(vmId, by) }
      })
    }
  }

  /** Engines a guest can resume on here: KVM only on an x86-64 host whose /dev/kvm works. */
  private localEngines (): GuestEngine[] {
    this.engines ??= GUEST_ENGINES.filter(engine => (engine !== 'kvm' || process.arch === 'x64') && engineUnavailable(engine) === undefined)
    return this.engines
  }

  localCapability (): ReplicaCapability {
    const limit = this.options.maxReplicaBytes ?? 2 * 1024 ** 3
    let held = 0
    for (const replica of this.replicas?.status() ?? []) held += replica.memoryBytes
    const canHold = this.replicas === undefined || this.options.restoreGuest === undefined
    return {
      arch: process.arch,
      hostPageSize: hostPageSize(),
      engines: canHold ? [] : this.localEngines(),
      freeReplicaBytes: canHold ? 0 : Math.max(0, Math.min(limit - held, freemem()))
    }
  }

  /** What each peer can host (or why it did not say), asked in parallel. */
  async capabilities (peers: string[]): Promise<Map<string, ReplicaCapability | Error>> {
    // A question that met a connection closing under it (a duplicate or idle link being closed
    // as the network settles) is asked once more, on whatever connection is open now; a peer
    // that did not answer in time is not asked again.
    const askOnce = async (peer: string): Promise<ReplicaCapability | Error> => {
      const first = await this.capability.ask(peer)
      if (!(first instanceof Error) || first.name === 'TimeoutError' || first.name === 'AbortError') return first
      return await this.capability.ask(peer)
    }
    const answers = await Promise.all(peers.map(async peer => [peer, await askOnce(peer)] as const))
    return new Map(answers)
  }

  private get leaseMs (): number {
    return this.options.leaseMs ?? DEFAULT_LEASE_MS
  }

  /** A backup that holds a newer epoch (or the same and a better rank) should win the next term itself. */
  private preferSelf (request: LeaseRequest): boolean {
    if (this.failover === undefined) return false
    const replica = this.replicas?.status().find(r => r.vmId === request.vmId)
    if (replica === undefined || replica.state === 'resumed' || replica.appliedEpoch === 0) return false
    // a node that could not run the guest must not hold the others back
    const engine = this.replicas?.replica(request.vmId)?.engine
    if (engine !== undefined && !(this.localEngines() as string[]).includes(engine)) return false
    if (this.failover.failedToResume(request.vmId)) return false
    if (replica.appliedEpoch !== request.epoch) return replica.appliedEpoch > request.epoch
    const voters = request.group.voters
    return voters.indexOf(this.leases.self) < voters.indexOf(request.candidate)
  }

  /** A guest resumed here after its lease passed to this node (failover or migration). */
  onTakeOver (listener: (takeOver: TakeOver) => void): void {
    this.takeOverListeners.push(listener)
  }

  /** A VM of this node whose lease passed to another node: its guest has been stopped. */
  onSuperseded (listener: (vmId: string, by: { term: number, holder?: string }) => void): void {
    this.supersededListeners.push(listener)
  }

  /**
   * Take the first term of a new VM's lease from its group (this node first, then its backups
   * and witnesses). The guest may start only once this resolves.
   */
  async acquireLease (vmId: string, voters: string[]): Promise<LeaseHolder> {
    const group: LeaseGroup = { generation: 1, voters: [this.leases.self, ...voters.filter(v => v !== this.leases.self)] }
    const holder = new LeaseHolder({ vmId, self: this.leases.self, ask: this.leases.ask, durationMs: this.leaseMs })
    const round = await holder.acquire(1, group, 0)
    if (!round.granted) {
      throw new LeaseUnavailableError(`no quorum of ${vmId}'s group granted its lease (${round.grants.length} of ${group.voters.length} voters; refusals: ${round.refusals.map(r => `${r.voter.slice(-8)} ${r.reason ?? ''}`).join(', ')})`)
    }
    return holder
  }

  /**
   * Keep a held lease renewed and the guest fenced inside it. Returns the guest to use from now
   * on: its pause and resume leave the lease's fence alone (see fenced-guest.ts).
   */
  keepLease<T extends ReplicatedGuest> (holder: LeaseHolder, guest: T): T & Fence {
    const fenced = fencedGuest(guest)
    const keeper = new LeaseKeeper({
      holder,
      guest: { pause: fenced.fence, resume: fenced.unfence },
      epoch: () => this.primaries.get(holder.vmId)?.replication.epoch ?? 0,
      logger: this.logger,
      onSuperseded: (by) => { this.standDown(holder.vmId, by) }
    })
    this.keepers.get(holder.vmId)?.stop()
    this.keepers.set(holder.vmId, keeper)
    keeper.start()
    return fenced
  }

  lease (vmId: string): LeaseKeeperStatus | undefined {
    return this.keepers.get(vmId)?.status()
  }

  keeper (vmId: string): LeaseKeeper | undefined {
    return this.keepers.get(vmId)
  }

  /**
   * Move a VM this node holds to a new group (re-protection after a failover or a migration):
   * the next term, granted by a quorum of the old group and of the new one.
   */
  async regroup (vmId: string, voters: string[]): Promise<boolean> {
    return (await this.regroupWhy(vmId, voters)) === undefined
  }

  /** As regroup; undefined when the new group holds the lease, else why not. */
  async regroupWhy (vmId: string, voters: string[]): Promise<string | undefined> {
    const keeper = this.keepers.get(vmId)
    if (keeper === undefined) return `${vmId} holds no lease here`
    const holder = keeper.holder
    const previous = holder.group
    const group: LeaseGroup = { generation: previous.generation + 1, voters: [this.leases.self, ...voters.filter(v => v !== this.leases.self)] }
    const round = await holder.acquire(holder.term + 1, group, this.primaries.get(vmId)?.replication.epoch ?? 0, previous)
    if (round.granted) return undefined
    const why = `the new lease group was not granted: ${round.refusals.map(r => `${r.voter.slice(-8)} ${r.reason ?? ''}`).join(', ')}`
    this.logger.warn('%s stays with its group: %s', vmId, why)
    return why
  }

  /** Stop this node's copy of a VM whose lease another node now holds. */
  private standDown (vmId: string, by: { term: number, holder?: string }): void {
    this.keepers.get(vmId)?.stop()
    this.keepers.delete(vmId)
    const primary = this.primaries.get(vmId)
    this.primaries.delete(vmId)
    void (async () => {
      await primary?.guest.stop().catch(() => {})
      await primary?.replication.stop().catch(() => {})
      for (const listener of this.supersededListeners) listener(vmId, by)
    })()
  }

  async start (): Promise<void> {
    await this.leases.start()
    await this.capability.start()
    await this.forwarder?.start()
    await this.replicas?.start()
    this.failover?.start()
  }

  async stop (): Promise<void> {
    this.failover?.stop()
    for (const keeper of this.keepers.values()) keeper.stop()
    this.keepers.clear()
    await this.leases.stop()
    await this.capability.stop()
    for (const { replication } of this.primaries.values()) await replication.stop()
    this.primaries.clear()
    await this.replicas?.stop()
    await this.forwarder?.stop()
  }

  /** Start replicating a guest that runs here; resolves once the initial full epoch is queued. */
  async replicate (guest: ReplicatedGuest, options: ReplicateOptions & { signal?: AbortSignal }): Promise<PrimaryReplication> {
    const replication = new PrimaryReplication({ secretKey: this.options.secretKey, ...options, node: this.node, protocolPrefix: this.options.protocolPrefix, guest, logger: this.logger })
    await replication.start({ signal: options.signal })
    this.primaries.set(guest.vmId, { replication, guest })
    return replication
  }

  primary (vmId: string): PrimaryReplication | undefined {
    return this.primaries.get(vmId)?.replication
  }

  status (vmId: string): ReplicationStatus | ReplicaStatus {
    const primary = this.primaries.get(vmId)
    if (primary != null) return primary.replication.status()
    const replica = this.replicas?.status().find(entry => entry.vmId === vmId)
    if (replica != null) return replica
    throw new VmNotFoundError(`no VM ${vmId} on this node`)
  }

  list (): VmListing[] {
    const listing: VmListing[] = []
    for (const { replication, guest } of this.primaries.values()) {
      listing.push({ vmId: guest.vmId, role: 'primary', state: replication.state, epoch: replication.epoch, guestCounter: guest.guestCounter(), memoryBytes: guest.memoryBytes })
    }
    for (const replica of this.replicas?.status() ?? []) {
      listing.push({ vmId: replica.vmId, role: 'backup', state: replica.state, epoch: replica.appliedEpoch, guestCounter: replica.guestCounter, memoryBytes: replica.memoryBytes, origin: replica.origin })
    }
    return listing
  }

  /** Stop a VM that runs here: its backups drop their replicas, then the guest stops. */
  async stopVm (vmId: string): Promise<void> {
    const primary = this.primaries.get(vmId)
    if (primary == null) throw new VmNotFoundError(`VM ${vmId} does not run on this node`)
    this.primaries.delete(vmId)
    const keeper = this.keepers.get(vmId)
    keeper?.stop()
    this.keepers.delete(vmId)
    await primary.replication.stop({ release: true })
    await primary.guest.stop()
    // stopped by its owner: the lease goes too, so no backup resumes it
    this.leases.voter.forget(vmId)
  }

  async migrate (vmId: string, target: string, options: Parameters<PrimaryReplication['migrate']>[1] = {}): ReturnType<PrimaryReplication['migrate']> {
    const primary = this.primaries.get(vmId)
    if (primary == null) throw new VmNotFoundError(`VM ${vmId} does not run on this node`)
    if (!primary.replication.status().backups.some(backup => backup.peerId === target)) throw new UnknownBackupError(`${target} is not a backup of ${vmId}`)
    const keeper = this.keepers.get(vmId)
    const report = await primary.replication.migrate(target, {
      ...options,
      // The guest here has stopped for the last time (it runs again only with the lease taken
      // back): the release goes out alongside the handover epoch; a target that asks before it
      // arrives asks again.
      handOverLease: async () => {
        keeper?.stop()
        void keeper?.holder.release().catch(() => {})
      },
      reclaimLease: async () => {
        if (keeper === undefined) return false
        const holder = keeper.holder
        const round = await holder.acquire(holder.term + 1, holder.group, primary.replication.epoch)
        if (!round.granted) return false
        const fence = primary.guest as Partial<Fence>
        const renewed = new LeaseKeeper({
          holder,
          guest: fence.fence !== undefined && fence.unfence !== undefined ? { pause: fence.fence, resume: fence.unfence } : primary.guest,
          epoch: () => primary.replication.epoch,
          logger: this.logger,
          onSuperseded: (by) => { this.standDown(vmId, by) }
        })
        this.keepers.set(vmId, renewed)
        renewed.start()
        return true
      }
    })
    this.primaries.delete(vmId)
    this.keepers.delete(vmId)
    return report
  }
}

/** Factory in the js-libp2p style: `ramReplication(options)(node)`. */
export function ramReplication (options: RamReplicationOptions): (node: ReplicationNode) => RamReplication {
  return (node) => new RamReplication(node, options)
}
