// Guest RAM: an anonymous shared mapping seen by KVM through its address and by JavaScript
// through a no-copy view. A backup can hold its replica in such a mapping, so resuming the
// guest there adopts the memory instead of copying it. Unmapping detaches the view first:
// a stale Uint8Array then reads as empty instead of touching unmapped memory.
import { addressOf, mmapShared, munmap, residentPages, viewOf } from '../kvm/binding.ts'
import type { NativePointer } from '../kvm/binding.ts'

interface Mapping { pointer: NativePointer, size: number }

const unmapOnCollect = new FinalizationRegistry<Mapping>((mapping) => { munmap(mapping.pointer, mapping.size) })
const byBuffer = new WeakMap<ArrayBuffer, GuestMemory>()

export class GuestMemory {
  readonly size: number
  readonly address: bigint
  private readonly pointer: NativePointer
  private buffer: ArrayBuffer
  private view: Uint8Array
  private released = false

  private constructor (pointer: NativePointer, size: number) {
    this.pointer = pointer
    this.size = size
    this.address = addressOf(pointer)
    this.buffer = viewOf(pointer, size)
    this.view = new Uint8Array(this.buffer)
    byBuffer.set(this.buffer, this)
    unmapOnCollect.register(this.buffer, { pointer, size }, this)
  }

  /** Fresh zeroed memory (pages are only backed once touched). */
  static allocate (size: number): GuestMemory {
    return new GuestMemory(mmapShared(size), size)
  }

  /** The mapping behind a view handed out by `allocate`, if the view covers all of it. */
  static of (view: Uint8Array): GuestMemory | undefined {
    if (!(view.buffer instanceof ArrayBuffer)) return undefined
    const memory = byBuffer.get(view.buffer)
    if (memory == null || memory.released || view.byteOffset !== 0 || view.byteLength !== memory.size) return undefined
    return memory
  }

  get bytes (): Uint8Array {
    return this.view
  }

  /** Per 4 KiB page: 1 if it was ever touched (host or guest), 0 if it still reads as zero without being backed. */
  residency (): Uint8Array {
    return residentPages(this.pointer, this.size)
  }

  get isReleased (): boolean {
    return this.released
  }

  release (): void {
    if (this.released) return
    this.released = true
    unmapOnCollect.unregister(this)
    byBuffer.delete(this.buffer)
    // Detach every view over the mapping before it goes away.
    this.buffer.transfer(0)
    this.view = new Uint8Array(0)
    this.buffer = this.view.buffer as ArrayBuffer
    munmap(this.pointer, this.size)
  }
}

/** Memory for a backup's replica that a later resume can adopt without a copy. */
export function allocateGuestMemory (bytes: number): Uint8Array {
  return GuestMemory.allocate(bytes).bytes
}
