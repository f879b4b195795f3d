// A backup's copy of one guest: its whole memory as of the last complete epoch, and the stripes
// of later epochs staged until each epoch is whole. An epoch is applied only when all its
// stripes are here and its predecessor is applied (a full epoch needs no predecessor), and its
// deltas are checked before any byte of memory is touched: the memory is never a torn epoch.
import { createHash } from 'node:crypto'
import type { VcpuState } from '../checkpoint.ts'
import type { StripeFrame } from '../transport/frames.ts'
import { epochContentHash } from '../transport/frames.ts'
import { applyPageDelta, validatePageDelta } from '../transport/page-delta.ts'
import { ReplicaMismatchError, StagingOverflowError } from './errors.ts'

export interface AppliedEpoch {
  vmId: string
  epoch: number
  guestCounter: number
  contentHash: Uint8Array
  memoryHash?: Uint8Array
  handover: boolean
  appliedAt: number
}

export interface GuestReplicaOptions {
  vmId: string
  origin: string
  memoryBytes: number
  pageSize: number
  /** Bytes of stripes that may wait in staging for incomplete epochs. */
  maxStagingBytes?: number
  /** Hash the whole memory after each applied epoch (for verification; costs a pass over memory). */
  hashMemory?: boolean
  /** Where the copy lives (zero-filled); a VMM can hand out guest-ready memory so a resume needs no copy. */
  allocateMemory?: (bytes: number) => Uint8Array
}

interface StagedEpoch {
  stripeCount: number
  received: number
  bytes: number
  full: boolean
  stripes: Array<StripeFrame | undefined>
}

export class GuestReplica {
  readonly vmId: string
  readonly origin: string
  readonly memoryBytes: number
  readonly pageSize: number
  readonly memory: Uint8Array
  private readonly staging = new Map<number, StagedEpoch>()
  private readonly maxStagingBytes: number
  private readonly hashMemory: boolean
  /** Memory untouched since allocation (all zeros): a full epoch need not clear anything. */
  private pristine = true
  stagedBytes = 0
  maxStagedBytes = 0
  /** The last applied epoch (0: none yet). */
  appliedEpoch = 0
  guestCounter = 0
  vcpu?: VcpuState
  /** The engine the primary runs the guest on, as its last applied epoch said. */
  engine?: string
  takenAt = 0
  lastHeardAt = Date.now()

  constructor (options: GuestReplicaOptions) {
    this.vmId = options.vmId
    this.origin = options.origin
    this.memoryBytes = options.memoryBytes
    this.pageSize = options.pageSize
    this.memory = options.allocateMemory?.(options.memoryBytes) ?? new Uint8Array(options.memoryBytes)
    this.maxStagingBytes = options.maxStagingBytes ?? Math.max(64 * 1024 * 1024, options.memoryBytes + 16 * 1024 * 1024)
    this.hashMemory = options.hashMemory ?? false
  }

  /** SHA-256 of the replica's memory now. */
  memoryHash (): Uint8Array {
    return new Uint8Array(createHash('sha256').update(this.memory).digest())
  }

  /**
   * Stage one stripe (duplicates are ignored: a re-sent stripe may arrive twice) and apply every
   * epoch that became applicable. `bytes` is the stripe's size on the wire.
   */
  accept (stripe: StripeFrame, bytes: number): AppliedEpoch[] {
    if (stripe.memoryBytes !== this.memoryBytes || stripe.pageSize !== this.pageSize) {
      throw new ReplicaMismatchError(`stripe for ${stripe.vmId} describes ${stripe.memoryBytes} bytes in ${stripe.pageSize}-byte pages, replica holds ${this.memoryBytes} in ${this.pageSize}`)
    }
    this.lastHeardAt = Date.now()
    if (stripe.epoch <= this.appliedEpoch) return []
    let staged = this.staging.get(stripe.epoch)
    if (staged == null) {
      staged = { stripeCount: stripe.stripeCount, received: 0, bytes: 0, full: stripe.full, stripes: new Array(stripe.stripeCount) }
      this.staging.set(stripe.epoch, staged)
    } else if (staged.stripeCount !== stripe.stripeCount || staged.full !== stripe.full) {
      throw new ReplicaMismatchError(`stripe ${stripe.stripeIndex} of epoch ${stripe.epoch} disagrees with its siblings on the stripe count or kind`)
    }
    if (staged.stripes[stripe.stripeIndex] != null) return []
    if (stripe.stripeIndex === 0 && stripe.vcpu == null) throw new ReplicaMismatchError(`stripe 0 of epoch ${stripe.epoch} carries no vCPU state`)
    if (this.stagedBytes + bytes > this.maxStagingBytes) {
      throw new StagingOverflowError(`staging ${this.stagedBytes + bytes} bytes would exceed ${this.maxStagingBytes}`)
    }
    for (const page of stripe.pages) {
      if (page.encoding !== 'delta') continue
      if (stripe.full) throw new ReplicaMismatchError(`epoch ${stripe.epoch} is full but carries a delta (a full epoch has no base to apply it to)`)
      validatePageDelta(page.data, this.pageSize)
    }
    staged.stripes[stripe.stripeIndex] = stripe
    staged.received++
    staged.bytes += bytes
    this.stagedBytes += bytes
    if (this.stagedBytes > this.maxStagedBytes) this.maxStagedBytes = this.stagedBytes
    return this.applyReady()
  }

  /** A new run of the primary's replication: its epochs start over (with a full one); memory stays until then. */
  restart (): void {
    this.staging.clear()
    this.stagedBytes = 0
    this.appliedEpoch = 0
  }

  /** Epochs waiting for stripes. */
  pendingEpochs (): number[] {
    return [...this.staging.keys()].sort((a, b) => a - b)
  }

  private applyReady (): AppliedEpoch[] {
    const applied: AppliedEpoch[] = []
    for (;;) {
      const next = this.nextApplicable()
      if (next == null) return applied
      applied.push(this.apply(next.epoch, next.staged))
    }
  }

  private nextApplicable (): { epoch: number, staged: StagedEpoch } | undefined {
    // The newest complete full epoch wins over everything before it.
    let best: { epoch: number, staged: StagedEpoch } | undefined
    for (const [epoch, staged] of this.staging) {
      if (staged.received !== staged.stripeCount) continue
      if (staged.full && (best == null || epoch > best.epoch)) best = { epoch, staged }
    }
    if (best != null) return best
    const staged = this.staging.get(this.appliedEpoch + 1)
    if (this.appliedEpoch > 0 && staged != null && staged.received === staged.stripeCount) return { epoch: this.appliedEpoch + 1, staged }
    return undefined
  }

  private apply (epoch: number, staged: StagedEpoch): AppliedEpoch {
    const { memory, pageSize } = this
    const stripes = staged.stripes as StripeFrame[]
    // A full epoch rebuilds memory: pages it lists are written, pages it leaves out become zeros.
    const covered = staged.full && !this.pristine ? new Uint8Array(this.memoryBytes / pageSize) : undefined
    for (const stripe of stripes) {
      for (const page of stripe.pages) {
        const offset = page.index * pageSize
        if (covered != null) covered[page.index] = 1
        if (page.encoding === 'raw') memory.set(page.data, offset)
        else if (page.encoding === 'zero') {
          if (!(staged.full && this.pristine)) memory.fill(0, offset, offset + pageSize)
        } else applyPageDelta(memory.subarray(offset, offset + pageSize), page.data)
      }
    }
    if (covered != null) {
      for (let index = 0; index < covered.length; index++) {
        if (covered[index] === 0) memory.fill(0, index * pageSize, (index + 1) * pageSize)
      }
    }
    this.pristine = false
    const first = stripes[0]
    this.appliedEpoch = epoch
    this.guestCounter = first.guestCounter
    this.vcpu = { regs: first.vcpu!.regs.slice(), sregs: first.vcpu!.sregs.slice() }
    this.engine = first.engine
    this.takenAt = first.takenAt
    for (const [stagedEpoch, other] of this.staging) {
      if (stagedEpoch <= epoch) {
        this.stagedBytes -= other.bytes
        this.staging.delete(stagedEpoch)
      }
    }
    return {
      vmId: this.vmId,
      epoch,
      guestCounter: first.guestCounter,
      contentHash: epochContentHash(stripes.map(stripe => stripe.hash)),
      memoryHash: this.hashMemory ? this.memoryHash() : undefined,
      handover: first.handover,
      appliedAt: Date.now()
    }
  }
}
