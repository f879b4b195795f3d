// Which guest pages were written since the last collection, from KVM's dirty log for one
// memory slot. With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled, KVM_GET_DIRTY_LOG only reads
// the bitmap and KVM_CLEAR_DIRTY_LOG re-protects just the pages collected, instead of the
// whole slot on every read. Call `collect` with the vCPU paused for a consistent epoch.
import {
  KVM_CLEAR_DIRTY_LOG, KVM_GET_DIRTY_LOG, KvmClearDirtyLog, KvmDirtyLog, addressOf, ioctlStruct, mmapShared, munmap, viewOf
} from '../kvm/binding.ts'
import type { NativePointer } from '../kvm/binding.ts'

export interface DirtyPageTrackerOptions {
  vmFd: number
  slot: number
  pages: number
  /** Manual protect was enabled on the VM (KVM_ENABLE_CAP) before the slot was created. */
  manualProtect: boolean
}

export class DirtyPageTracker {
  readonly pages: number
  readonly manualProtect: boolean
  private readonly vmFd: number
  private readonly slot: number
  private readonly bitmapPointer: NativePointer
  private readonly bitmapBytes: number
  private readonly bitmap: Uint32Array
  private readonly bitmapAddress: bigint
  private closed = false

  constructor (options: DirtyPageTrackerOptions) {
    this.vmFd = options.vmFd
    this.slot = options.slot
    this.pages = options.pages
    this.manualProtect = options.manualProtect
    // KVM writes the bitmap in 64-bit words; it lives in native memory so its address is stable.
    const words64 = Math.ceil(options.pages / 64)
    this.bitmapBytes = Math.max(4096, Math.ceil((words64 * 8) / 4096) * 4096)
    this.bitmapPointer = mmapShared(this.bitmapBytes)
    this.bitmapAddress = addressOf(this.bitmapPointer)
    this.bitmap = new Uint32Array(viewOf(this.bitmapPointer, this.bitmapBytes), 0, words64 * 2)
  }

  /** The guest-physical page numbers written since the previous `collect`, ascending; tracking restarts for them. */
  collect (): number[] {
    ioctlStruct(this.vmFd, KVM_GET_DIRTY_LOG, KvmDirtyLog, { slot: this.slot, padding1: 0, dirty_bitmap: this.bitmapAddress }, 'KVM_GET_DIRTY_LOG')
    const pages: number[] = []
    const bitmap = this.bitmap
    for (let word = 0; word < bitmap.length; word++) {
      let bits = bitmap[word]
      while (bits !== 0) {
        const low = bits & -bits
        pages.push(word * 32 + 31 - Math.clz32(low))
        bits ^= low
      }
    }
    if (this.manualProtect && pages.length > 0) {
      // The same bitmap as the mask: only the pages just collected are cleared and re-protected.
      ioctlStruct(this.vmFd, KVM_CLEAR_DIRTY_LOG, KvmClearDirtyLog, {
        slot: this.slot, num_pages: this.pages, first_page: 0, dirty_bitmap: this.bitmapAddress
      }, 'KVM_CLEAR_DIRTY_LOG')
    }
    return pages
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    munmap(this.bitmapPointer, this.bitmapBytes)
  }
}
