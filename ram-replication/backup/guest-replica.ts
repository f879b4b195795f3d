// A backup's copy of one guest: its whole memory as of the last complete epoch, and the stripes
// of later epochs staged until each epoch is whole. An epoch is applied only when all its
// stripes are here and its predecessor is applied (a full epoch needs no predecessor), and its
// deltas are checked before any byte of memory is touched: the memory is never a torn epoch
// once applying has stopped. Applying and hashing go in turns of the event loop
// (../turn-budget.ts): a small epoch is applied at once, a full one (every page of the guest)
// over several turns, and nothing else is applied meanwhile.
//
// With `hashMemory`, the backup hashes its whole memory after the newest epoch it applied
// whenever no hash is under way, holding later epochs back until the digest is out, and sends
// the epoch's acknowledgement with it; the epochs applied while it was hashing go without one.
// A hash taken at every epoch, in one piece, held the event loop for longer than the epochs
// came, until lease requests went unanswered.
import type { VcpuState } from '../checkpoint.ts'
import { MemoryHashing } from '../memory-hash.ts'
import { runForTurn, runInLaterTurns, stepsOf } from '../turn-budget.ts'
import type { StripeFrame } from '../transport/frames.ts'
import { epochContentHash } from '../transport/frames.ts'
import { validatePageDelta } from '../transport/page-delta.ts'
import { EpochApplication } from './epoch-application.ts'
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
  /** Hash the whole memory after applied epochs, whenever no hash is under way (for verification; costs a pass over memory). */
  hashMemory?: boolean
  /** Where the copy lives (zero-filled); a VMM can hand out guest-ready memory so a resume needs no copy. */
  allocateMemory?: (bytes: number) => Uint8Array
  /**
   * Each applied epoch, in order: during `accept` when it fits in the turn, later when it is
   * large or its memory is being hashed.
   */
  onApplied?: (epoch: AppliedEpoch) => void
}

interface StagedEpoch {
  stripeCount: number
  received: number
  bytes: number
  full: boolean
  handover: boolean
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
  private hashMemory: boolean
  private readonly onApplied: (epoch: AppliedEpoch) => void
  /** Memory untouched since allocation (all zeros): a full epoch need not clear anything. */
  private pristine = true
  /** Applying goes on in later turns: stripes are only staged until it is done. */
  private busy = false
  /** Settles when the work in later turns is done (or was given up). */
  private idle: Promise<void> = Promise.resolve()
  /** Ends the work of this run of the primary's replication (a restart or a close aborts it). */
  private run = new AbortController()
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
    this.onApplied = options.onApplied ?? (() => {})
  }

  /**
   * Stage one stripe (duplicates are ignored: a re-sent stripe may arrive twice) and apply every
   * epoch that became applicable. `bytes` is the stripe's size on the wire.
   */
  accept (stripe: StripeFrame, bytes: number): void {
    if (stripe.memoryBytes !== this.memoryBytes || stripe.pageSize !== this.pageSize) {
      throw new ReplicaMismatchError(`stripe for ${stripe.vmId} describes ${stripe.memoryBytes} bytes in ${stripe.pageSize}-byte pages, replica holds ${this.memoryBytes} in ${this.pageSize}`)
    }
    this.lastHeardAt = Date.now()
    if (stripe.epoch <= this.appliedEpoch) return
    let staged = this.staging.get(stripe.epoch)
    if (staged == null) {
      staged = { stripeCount: stripe.stripeCount, received: 0, bytes: 0, full: stripe.full, handover: stripe.handover, stripes: new Array(stripe.stripeCount) }
      this.staging.set(stripe.epoch, staged)
    } else if (staged.stripeCount !== stripe.stripeCount || staged.full !== stripe.full) {
      throw new ReplicaMismatchError(`stripe ${stripe.stripeIndex} of epoch ${stripe.epoch} disagrees with its siblings on the stripe count or kind`)
    }
    if (staged.stripes[stripe.stripeIndex] != null) return
    if (stripe.stripeIndex === 0 && stripe.vcpu == null) throw new ReplicaMismatchError(`stripe 0 of epoch ${stripe.epoch} carries no vCPU state`)
    // Past the bound, only the epoch that comes next is still taken: it is what every staged
    // epoch waits for, and refusing it would leave the replica stuck behind its own staging.
    // At most one epoch's stripes go past the bound that way.
    if (this.stagedBytes + bytes > this.maxStagingBytes && stripe.epoch !== this.appliedEpoch + 1) {
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
    this.advance()
  }

  /** A new run of the primary's replication: its epochs start over (with a full one); memory stays until then. */
  restart (): void {
    this.stopWork()
    this.staging.clear()
    this.stagedBytes = 0
    this.appliedEpoch = 0
  }

  /** The replica is dropped: work under way stops. */
  close (): void {
    this.stopWork()
    this.staging.clear()
    this.stagedBytes = 0
  }

  /**
   * Finish the epoch being applied and apply every complete one; hashing stops for good. Before
   * a guest resumes from this memory, which is then the guest's.
   */
  async settle (): Promise<void> {
    this.hashMemory = false
    for (;;) {
      this.advance()
      if (!this.busy) return
      await this.idle
    }
  }

  /** Resolves once nothing is left to apply or hash in later turns (for tests and tools). */
  async whenIdle (): Promise<void> {
    while (this.busy) await this.idle
  }

  /** Epochs waiting for stripes. */
  pendingEpochs (): number[] {
    return [...this.staging.keys()].sort((a, b) => a - b)
  }

  private stopWork (): void {
    this.run.abort()
    this.run = new AbortController()
    this.busy = false
  }

  /** Apply what can be applied: in this turn as far as it fits, the rest in later turns. */
  private advance (): void {
    if (this.busy) return
    const step = stepsOf(this.applying())
    if (runForTurn(step)) return
    this.busy = true
    const run = this.run
    this.idle = runInLaterTurns(step, run.signal).catch(() => {
      // given up (restart, close) or a listener threw: a later stripe starts over
      if (this.run === run) this.busy = false
    })
  }

  /** The applying, as steps: each yield is a point where the turn may end. */
  private * applying (): Generator<void, void> {
    for (;;) {
      const next = this.nextApplicable()
      if (next == null) {
        // decided in the same step as the end of the work: a stripe staged after this one starts it again
        this.busy = false
        return
      }
      const application = new EpochApplication(this.memory, this.pageSize, next.epoch, next.staged.stripes as StripeFrame[], { full: next.staged.full, pristine: this.pristine })
      this.pristine = false
      while (!application.step()) yield
      const applied = this.complete(application)
      // The newest epoch is hashed; epochs that are already here next go without a hash, and
      // so does a handover epoch, which the guest resumes from at once.
      if (this.hashMemory && !applied.handover && this.nextApplicable() == null) {
        const hashing = new MemoryHashing(this.memory)
        while (!hashing.step()) {
          yield
          if (!this.hashWanted()) break
        }
        applied.memoryHash = hashing.digest
      }
      this.onApplied(applied)
      yield
    }
  }

  /** Whether a hash under way should go on: not past a settle, and not in the way of a handover epoch (the migration's downtime). */
  private hashWanted (): boolean {
    if (!this.hashMemory) return false
    for (const staged of this.staging.values()) {
      if (staged.handover && staged.received === staged.stripeCount) return false
    }
    return true
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

  /** The epoch is all in memory: it becomes the replica's state, and what was staged up to it goes. */
  private complete (application: EpochApplication): AppliedEpoch {
    const { epoch, stripes } = application
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
      handover: first.handover,
      appliedAt: Date.now()
    }
  }
}
