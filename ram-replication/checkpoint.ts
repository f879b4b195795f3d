// The contract between the VMM side (KVM, guest, dirty tracking) and the replication side
// (transport, backups, policy, migration, failover). Both halves are built against it.

/** Raw `struct kvm_regs` and `struct kvm_sregs` bytes, as KVM_GET_REGS/KVM_GET_SREGS return them. */
export interface VcpuState {
  regs: Uint8Array
  sregs: Uint8Array
}

/** One guest page copied while the vCPU was paused. `index` is the guest-physical page number. */
export interface DirtyPage {
  index: number
  data: Uint8Array
}

/**
 * Everything a backup needs to move its copy of the guest from epoch-1 to `epoch`:
 * the pages written since the previous checkpoint (all pages when `full`), and the vCPU.
 */
export interface Checkpoint {
  vmId: string
  epoch: number
  full: boolean
  memoryBytes: number
  pageSize: number
  pages: DirtyPage[]
  vcpu: VcpuState
  /** The guest's own progress counter at the moment of the checkpoint. */
  guestCounter: number
  takenAt: number
  /** The execution engine that took it ('kvm', 'interpreted'): a backup resumes the guest on the same one. */
  engine?: string
}

/** What the replication engine drives on the primary. Implemented by the VMM. */
export interface ReplicatedGuest {
  readonly vmId: string
  readonly memoryBytes: number
  readonly pageSize: number
  /** Pause briefly, collect the dirty set since the last checkpoint, copy pages and vCPU, resume. */
  checkpoint (epoch: number, options?: { signal?: AbortSignal }): Promise<Checkpoint>
  /** Every page (initial sync, or resync of a backup that fell behind). Resets dirty tracking. */
  fullCheckpoint (epoch: number, options?: { signal?: AbortSignal }): Promise<Checkpoint>
  /** Stop the vCPU until resume(); used by the `pause` emergency mode and by migration. */
  pause (): Promise<void>
  resume (): void
  /** 0 = full speed, 1 = stopped. The guest is slowed by this fraction (throttling). */
  setThrottle (fraction: number): void
  guestCounter (): number
  /** A live view of guest memory (no copy). */
  memory (): Uint8Array
  stop (): Promise<void>
}
