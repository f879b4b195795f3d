// Writing one complete epoch into a replica's memory, a few pages per step, so that a full
// epoch (every page of the guest: the initial sync, a resync) can be spread over turns of the
// event loop (../turn-budget.ts). Until the last step the memory is torn between two epochs:
// the replica reports the epoch, and lets a guest resume from its memory, only after that.
// Deltas were checked when their stripes were staged, so no step can fail half-way.
import type { StripeFrame } from '../transport/frames.ts'
import { applyPageDelta } from '../transport/page-delta.ts'

/** Pages written per step: 128 KiB of 4 KiB pages, well under a millisecond even on fresh memory. */
const STEP_PAGES = 32

export class EpochApplication {
  readonly epoch: number
  readonly stripes: readonly StripeFrame[]
  private readonly memory: Uint8Array
  private readonly pageSize: number
  private readonly full: boolean
  /** The memory is all zeros (never written): a full epoch need not write its zero pages. */
  private readonly pristine: boolean
  /** A full epoch over written memory: the pages it lists, so the others can be zeroed. */
  private readonly covered?: Uint8Array
  private stripe = 0
  private page = 0
  private zeroed = 0

  constructor (memory: Uint8Array, pageSize: number, epoch: number, stripes: readonly StripeFrame[], options: { full: boolean, pristine: boolean }) {
    this.memory = memory
    this.pageSize = pageSize
    this.epoch = epoch
    this.stripes = stripes
    this.full = options.full
    this.pristine = options.pristine
    if (options.full && !options.pristine) this.covered = new Uint8Array(memory.length / pageSize)
  }

  /** Writes the next few pages; true once the whole epoch is in memory. */
  readonly step = (): boolean => {
    const { memory, pageSize } = this
    let budget = STEP_PAGES
    while (this.stripe < this.stripes.length) {
      const pages = this.stripes[this.stripe].pages
      while (this.page < pages.length) {
        if (budget-- === 0) return false
        const page = pages[this.page++]
        const offset = page.index * pageSize
        if (this.covered != null) this.covered[page.index] = 1
        if (page.encoding === 'raw') memory.set(page.data, offset)
        else if (page.encoding === 'zero') {
          if (!(this.full && this.pristine)) memory.fill(0, offset, offset + pageSize)
        } else applyPageDelta(memory.subarray(offset, offset + pageSize), page.data)
      }
      this.stripe++
      this.page = 0
    }
    // A full epoch rebuilds memory: pages it leaves out become zeros.
    const covered = this.covered
    if (covered == null) return true
    while (this.zeroed < covered.length) {
      const index = this.zeroed++
      if (covered[index] !== 0) continue
      memory.fill(0, index * pageSize, (index + 1) * pageSize)
      if (--budget === 0) return false
    }
    return true
  }
}
