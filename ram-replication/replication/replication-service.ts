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
  resumeOnPrimaryLoss?: boolean
  /** Backups hash a replica's memory at every applied epoch and report it (to compare with the primary's `verifyEpochs`). */
  hashMemory?: boolean
  /** The VMM's "start a guest from memory and vCPU state" (needed to take over a VM here). */
  restoreGuest?: GuestRestorer
  allocateMemory?: (bytes: number) => Uint8Array
  logger?: ReplicationLogger
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
        resumeOnPrimaryLoss: options.resumeOnPrimaryLoss,
        hashMemory: options.hashMemory,
        secretKey: options.secretKey,
        restoreGuest: options.restoreGuest,
        allocateMemory: options.allocateMemory,
        logger: this.logger
      })
    }
  }

  async start (): Promise<void> {
    await this.forwarder?.start()
    await this.replicas?.start()
  }

  async stop (): Promise<void> {
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
    await primary.replication.stop({ release: true })
    await primary.guest.stop()
  }

  async migrate (vmId: string, target: string, options: Parameters<PrimaryReplication['migrate']>[1] = {}): ReturnType<PrimaryReplication['migrate']> {
    const primary = this.primaries.get(vmId)
    if (primary == null) throw new VmNotFoundError(`VM ${vmId} does not run on this node`)
    if (!primary.replication.status().backups.some(backup => backup.peerId === target)) throw new UnknownBackupError(`${target} is not a backup of ${vmId}`)
    const report = await primary.replication.migrate(target, options)
    this.primaries.delete(vmId)
    return report
  }
}

/** Factory in the js-libp2p style: `ramReplication(options)(node)`. */
export function ramReplication (options: RamReplicationOptions): (node: ReplicationNode) => RamReplication {
  return (node) => new RamReplication(node, options)
}
