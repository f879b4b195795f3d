// Turns a checkpoint into stripes: zero pages become markers, pages that changed a little
// become deltas against the version the backups already hold, the rest go raw; pages are
// then cut into stripes of about `stripeBytes` so parallel links can share an epoch. A full
// epoch (every page: copied into the delta cache, hashed stripe by stripe) is encoded in turns
// of the event loop (../turn-budget.ts) by `encodeInTurns`.
import type { Checkpoint } from '../checkpoint.ts'
import { runInTurns } from '../turn-budget.ts'
import { encodePageDelta } from './page-delta.ts'
import { encodeStripe, epochContentHash } from './frames.ts'
import type { EncodedStripe, PageEntry } from './frames.ts'

export interface EpochEncoderOptions {
  /** Target encoded size of one stripe. */
  stripeBytes?: number
  /** Delta-encode pages against their last sent version. */
  delta?: boolean
  /** Memory given to last-sent page versions for delta encoding. */
  deltaCacheBytes?: number
}

export interface EncodedEpoch {
  vmId: string
  epoch: number
  full: boolean
  handover: boolean
  guestCounter: number
  takenAt: number
  stripes: EncodedStripe[]
  contentHash: Uint8Array
  /** Bytes on the wire (frame bodies). */
  bytes: number
  pages: number
  zeroPages: number
  deltaPages: number
  /** What the pages would take raw. */
  rawBytes: number
}

export const DEFAULT_STRIPE_BYTES = 256 * 1024
/** Pages looked at between two points where the turn may end. */
const STEP_PAGES = 32

export class EpochEncoder {
  private stripeBytes: number
  private readonly delta: boolean
  private readonly cacheLimit: number
  /** Last sent version of recently sent pages, oldest first (Map order is the LRU order). */
  private readonly cache = new Map<number, Uint8Array>()
  /** One bit per page: the backups hold this page as zeros (so a first write is a delta against zero). */
  private zeroKnown = new Uint8Array(0)
  private zeroPage = new Uint8Array(0)

  constructor (options: EpochEncoderOptions = {}) {
    this.stripeBytes = options.stripeBytes ?? DEFAULT_STRIPE_BYTES
    this.delta = options.delta ?? true
    this.cacheLimit = options.deltaCacheBytes ?? 64 * 1024 * 1024
  }

  encode (checkpoint: Checkpoint, options: { handover?: boolean } = {}): EncodedEpoch {
    const encoding = this.encoding(checkpoint, options)
    for (;;) {
      const next = encoding.next()
      if (next.done === true) return next.value
    }
  }

  /** As `encode`, in turns of the event loop: a small epoch within this turn, a full one over several. */
  async encodeInTurns (checkpoint: Checkpoint, options: { handover?: boolean } = {}): Promise<EncodedEpoch> {
    const encoding = this.encoding(checkpoint, options)
    let encoded: EncodedEpoch | undefined
    await runInTurns(() => {
      const next = encoding.next()
      if (next.done === true) encoded = next.value
      return encoded != null
    })
    return encoded!
  }

  /** The encoding, as steps: each yield is a point where the turn may end. */
  private * encoding (checkpoint: Checkpoint, options: { handover?: boolean }): Generator<void, EncodedEpoch> {
    const { pageSize } = checkpoint
    if (this.zeroPage.length !== pageSize) this.zeroPage = new Uint8Array(pageSize)
    const zero = Buffer.from(this.zeroPage.buffer, this.zeroPage.byteOffset, pageSize)
    // A full epoch replaces every page on the backups: older versions cannot serve as delta bases.
    if (checkpoint.full) {
      this.cache.clear()
      this.zeroKnown = new Uint8Array(Math.ceil(checkpoint.memoryBytes / pageSize / 8))
      // Pages a full epoch leaves out are zero on the backups (it rebuilds memory from zeros).
      this.zeroKnown.fill(0xff)
      for (const page of checkpoint.pages) this.zeroKnown[page.index >>> 3] &= ~(1 << (page.index & 7))
    }
    const maxCachedPages = Math.floor(this.cacheLimit / pageSize)
    const entries: PageEntry[] = []
    const sizes: number[] = []
    let zeroPages = 0
    let deltaPages = 0
    let sinceYield = 0
    for (const page of checkpoint.pages) {
      if (++sinceYield === STEP_PAGES) {
        sinceYield = 0
        yield
      }
      const data = page.data
      const bit = 1 << (page.index & 7)
      const slot = page.index >>> 3
      if (zero.equals(data)) {
        entries.push({ index: page.index, encoding: 'zero', data: this.zeroPage.subarray(0, 0) })
        sizes.push(5)
        zeroPages++
        this.cache.delete(page.index)
        if (slot < this.zeroKnown.length) this.zeroKnown[slot] |= bit
        continue
      }
      const wasZero = slot < this.zeroKnown.length && (this.zeroKnown[slot] & bit) !== 0
      if (wasZero) this.zeroKnown[slot] &= ~bit
      if (this.delta && checkpoint.full && maxCachedPages > 0) {
        this.remember(page.index, data, maxCachedPages)
      } else if (this.delta && maxCachedPages > 0) {
        if (wasZero) {
          const delta = encodePageDelta(this.zeroPage, data, pageSize >>> 1)
          this.remember(page.index, data, maxCachedPages)
          if (delta != null) {
            entries.push({ index: page.index, encoding: 'delta', data: delta })
            sizes.push(9 + delta.length)
            deltaPages++
            continue
          }
          entries.push({ index: page.index, encoding: 'raw', data })
          sizes.push(5 + pageSize)
          continue
        }
        const previous = this.cache.get(page.index)
        if (previous != null) {
          const delta = encodePageDelta(previous, data, pageSize >>> 1)
          this.cache.delete(page.index)
          previous.set(data)
          this.cache.set(page.index, previous)
          if (delta != null) {
            entries.push({ index: page.index, encoding: 'delta', data: delta })
            sizes.push(9 + delta.length)
            deltaPages++
            continue
          }
        } else {
          this.remember(page.index, data, maxCachedPages)
        }
      }
      entries.push({ index: page.index, encoding: 'raw', data })
      sizes.push(5 + pageSize)
    }

    const groups: Array<{ start: number, end: number }> = []
    const stripeBytes = this.stripeBytes
    let start = 0
    let accumulated = 0
    for (let i = 0; i < entries.length; i++) {
      accumulated += sizes[i]
      if (accumulated >= stripeBytes) {
        groups.push({ start, end: i + 1 })
        start = i + 1
        accumulated = 0
      }
    }
    if (start < entries.length || groups.length === 0) groups.push({ start, end: entries.length })

    const handover = options.handover ?? false
    const stripes: EncodedStripe[] = []
    for (const [stripeIndex, group] of groups.entries()) {
      // a stripe's integrity hash covers all of it: one stripe per step
      if (stripeIndex > 0) yield
      stripes.push(encodeStripe({
        vmId: checkpoint.vmId,
        epoch: checkpoint.epoch,
        stripeIndex,
        stripeCount: groups.length,
        full: checkpoint.full,
        handover,
        memoryBytes: checkpoint.memoryBytes,
        pageSize,
        guestCounter: checkpoint.guestCounter,
        takenAt: checkpoint.takenAt,
        vcpu: stripeIndex === 0 ? checkpoint.vcpu : undefined,
        engine: stripeIndex === 0 ? checkpoint.engine : undefined
      }, entries.slice(group.start, group.end)))
    }
    let bytes = 0
    for (const stripe of stripes) bytes += stripe.bytes
    return {
      vmId: checkpoint.vmId,
      epoch: checkpoint.epoch,
      full: checkpoint.full,
      handover,
      guestCounter: checkpoint.guestCounter,
      takenAt: checkpoint.takenAt,
      stripes,
      contentHash: epochContentHash(stripes.map(stripe => stripe.hash)),
      bytes,
      pages: entries.length,
      zeroPages,
      deltaPages,
      rawBytes: entries.length * pageSize
    }
  }

  /** Target stripe size for the next epochs (the network profile changed). */
  setStripeBytes (bytes: number): void {
    this.stripeBytes = bytes
  }

  /** Forget every cached page version and zero page (after a backup is resynced from scratch, for instance). */
  reset (): void {
    this.cache.clear()
    this.zeroKnown = new Uint8Array(0)
  }

  private remember (index: number, data: Uint8Array, maxCachedPages: number): void {
    let slot: Uint8Array | undefined
    if (this.cache.size >= maxCachedPages) {
      const oldest = this.cache.keys().next()
      if (oldest.done !== true) {
        slot = this.cache.get(oldest.value)
        this.cache.delete(oldest.value)
      }
    }
    slot ??= new Uint8Array(data.length)
    slot.set(data)
    this.cache.set(index, slot)
  }
}
