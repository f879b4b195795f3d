// Linear → physical translation through the guest's own 4-level page tables (long mode, user
// mode: every level must be present and user-accessible, and writable for a store), a software
// TLB so a page is walked once, and every store marked in the dirty log.
//
// Coherence: pages the walker read (page tables) and pages holding cached decoded code are
// "watched"; a guest store into a watched page drops the TLB and the decoded-code cache, so
// neither can go stale. The page writer maps its code and page tables read-only, so that never
// happens there, but nothing here relies on it.
import { DirtyLog } from './dirty-log.ts'
import { X86Fault } from './errors.ts'

const PAGE_SHIFT = 12
const PAGE_SIZE = 4096
const PTE_PRESENT = 0x1
const PTE_WRITABLE = 0x2
const PTE_USER = 0x4
const PTE_ACCESSED = 0x20
const PTE_DIRTY = 0x40
const PTE_LARGE = 0x80
/** Linear addresses the TLB covers (the first 4 GiB); anything above is walked every time (and faults here). */
const TLB_PAGES = 1 << 20
/** TLB entry: physical page << 2 | may-write << 1 | valid. */
const TLB_VALID = 1
const TLB_WRITE = 2

export interface MmuOptions {
  /** Physical address of the PML4 (CR3 without flags). */
  cr3: number
  /** Code runs at CPL 3: every level must allow user access. */
  user: boolean
}

export class Mmu {
  readonly memory: Uint8Array
  readonly dirty: DirtyLog
  readonly physicalPages: number
  private readonly view: DataView
  private readonly words: Uint32Array | undefined
  private readonly tlb = new Int32Array(TLB_PAGES)
  private readonly watched: Uint8Array
  private anyWatched = false
  private readonly cr3: number
  private readonly user: boolean
  /** Called when a store lands in a watched page (the decoded-code cache is dropped). */
  onCodeInvalidated: () => void = () => {}
  /** RIP of the instruction being executed, for fault reports. */
  rip = 0

  constructor (memory: Uint8Array, options: MmuOptions) {
    this.memory = memory
    this.physicalPages = Math.floor(memory.byteLength / PAGE_SIZE)
    this.view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength)
    this.words = memory.byteOffset % 4 === 0 ? new Uint32Array(memory.buffer, memory.byteOffset, memory.byteLength >>> 2) : undefined
    this.dirty = new DirtyLog(this.physicalPages)
    this.watched = new Uint8Array(this.physicalPages)
    this.cr3 = options.cr3 - (options.cr3 % PAGE_SIZE)
    this.user = options.user
  }

  read32 (address: number): number {
    if (address >= 0 && address < 0xfffffffd && (address & 0xfff) <= 0xffc) {
      let entry = this.tlb[address >>> PAGE_SHIFT]
      if (entry === 0) entry = this.fill(address, false)
      const physical = (entry >>> 2) * PAGE_SIZE + (address & 0xfff)
      if (this.words !== undefined && (physical & 3) === 0) return this.words[physical >>> 2]
      return this.view.getUint32(physical, true)
    }
    // Across a page boundary (or beyond the TLB): byte by byte, each through its own translation.
    let value = 0
    for (let i = 3; i >= 0; i--) value = value * 256 + this.memory[this.translate(address + i, false)]
    return value
  }

  write32 (address: number, value: number): void {
    if (address >= 0 && address < 0xfffffffd && (address & 0xfff) <= 0xffc) {
      let entry = this.tlb[address >>> PAGE_SHIFT]
      if ((entry & TLB_WRITE) === 0) entry = this.fill(address, true)
      const page = entry >>> 2
      if (this.anyWatched && this.watched[page] !== 0) this.invalidate()
      this.dirty.mark(page)
      const physical = page * PAGE_SIZE + (address & 0xfff)
      if (this.words !== undefined && (physical & 3) === 0) this.words[physical >>> 2] = value
      else this.view.setUint32(physical, value, true)
      return
    }
    // Translate all four bytes before storing any: a fault leaves memory untouched.
    const physical = [0, 1, 2, 3].map(i => this.translate(address + i, true))
    for (let i = 0; i < 4; i++) {
      const page = Math.floor(physical[i] / PAGE_SIZE)
      if (this.anyWatched && this.watched[page] !== 0) this.invalidate()
      this.dirty.mark(page)
      this.memory[physical[i]] = (value >>> (8 * i)) & 0xff
    }
  }

  /** An instruction byte (fetch needs only read permission: the guest runs without NX). */
  fetchByte (address: number): number {
    return this.memory[this.translate(address, false)]
  }

  /** Keep cached decoded code coherent: a store into this physical page drops the cache. */
  watchCodeAt (address: number): void {
    this.watch(Math.floor(this.translate(address, false) / PAGE_SIZE))
  }

  /** Physical address of a linear one, or a page fault. */
  translate (address: number, write: boolean): number {
    if (address >= 0 && address < TLB_PAGES * PAGE_SIZE) {
      let entry = this.tlb[Math.floor(address / PAGE_SIZE)]
      if (entry === 0 || (write && (entry & TLB_WRITE) === 0)) entry = this.fill(address, write)
      return (entry >>> 2) * PAGE_SIZE + (address % PAGE_SIZE)
    }
    return this.walk(address, write)
  }

  private fill (address: number, write: boolean): number {
    const physical = this.walk(address, write)
    const page = Math.floor(physical / PAGE_SIZE)
    const entry = (page << 2) | TLB_VALID | (this.lastWalkWritable ? TLB_WRITE : 0)
    this.tlb[Math.floor(address / PAGE_SIZE)] = entry
    return entry
  }

  /** Whether the last walk left the leaf writable and dirty (a store may use the TLB entry). */
  private lastWalkWritable = false

  private walk (address: number, write: boolean): number {
    const fault = (why: string): never => {
      throw new X86Fault('page-fault', this.rip, `${write ? 'write to' : 'read of'} 0x${address.toString(16)}: ${why}`, address)
    }
    // Canonical lower half only: the guest's tables map nothing in the upper half.
    if (!(address >= 0 && address < 2 ** 47)) fault('not a canonical user address')
    let table = this.cr3
    let writable = true
    const shifts = [39, 30, 21, 12]
    for (let level = 0; level < 4; level++) {
      const index = Math.floor(address / 2 ** shifts[level]) % 512
      const entryAddress = table + index * 8
      if (entryAddress + 8 > this.memory.byteLength) fault(`page table at 0x${table.toString(16)} lies outside guest memory`)
      this.watch(Math.floor(entryAddress / PAGE_SIZE))
      let low = this.view.getUint32(entryAddress, true)
      const high = this.view.getUint32(entryAddress + 4, true) & 0x7fffffff
      if ((low & PTE_PRESENT) === 0) fault(`not mapped (level ${4 - level} entry not present)`)
      if (this.user && (low & PTE_USER) === 0) fault('supervisor-only mapping')
      if ((low & PTE_WRITABLE) === 0) writable = false
      if (write && !writable) fault('mapped read-only')
      const leaf = level === 3 || (level >= 1 && (low & PTE_LARGE) !== 0)
      // The hardware walker sets accessed (and, for a store, dirty in the leaf) bits: a write to the table.
      const setBits = PTE_ACCESSED | (leaf && write ? PTE_DIRTY : 0)
      if ((low & setBits) !== setBits) {
        low |= setBits
        this.view.setUint32(entryAddress, low, true)
        this.dirty.mark(Math.floor(entryAddress / PAGE_SIZE))
      }
      const base = high * 0x100000000 + (low & 0xfffff000)
      if (leaf) {
        const size = 2 ** shifts[level]
        const physical = base - (base % size) + (address % size)
        if (physical >= this.physicalPages * PAGE_SIZE) fault(`maps to 0x${physical.toString(16)}, outside guest memory`)
        this.lastWalkWritable = writable && (low & PTE_DIRTY) !== 0
        return physical
      }
      table = base
    }
    return fault('unreachable')
  }

  private watch (page: number): void {
    if (page >= this.physicalPages) return
    this.watched[page] = 1
    this.anyWatched = true
  }

  /** A store hit a page table or cached code: forget every translation and every decoded instruction. */
  private invalidate (): void {
    this.tlb.fill(0)
    this.watched.fill(0)
    this.anyWatched = false
    this.onCodeInvalidated()
  }
}
