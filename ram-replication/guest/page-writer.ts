// The guest workload: real x86-64 machine code that writes pages in a chosen pattern, keeps a
// 64-bit progress counter and a running checksum in guest memory, and reports progress every
// batch. The host only loads the code, the page tables and the parameters below; everything
// the guest does, it computes itself.
//
// The writer runs in 64-bit user mode, its whole life: on a PVM host (KVM without hardware
// virtualization, as in nested clouds) that is the only mode whose instructions run natively;
// 16-bit, 32-bit and supervisor code are emulated one instruction at a time (about 2 µs each
// here), and a user-mode `out` is refused. So the guest reports with `int3`: with software
// breakpoints routed to the VMM (KVM_GUESTDBG_USE_SW_BP) every report is a KVM_EXIT_DEBUG on
// any x86 KVM, PVM or hardware. EAX carries the counter, EDX the kind of report.
//
// Each write picks a page p, increments the counter c, and stamps the page:
//   dword 0 = c (low 32 bits), dword 1 = p, dword 2 = s = mix(c, p), dwords 3.. = s + i
// except the `full` pattern, which fills all 1024 dwords: dwords 3..1023 are an xorshift32
// stream started from s (its low bit set, so never zero). Every write then rewrites a whole page
// with data no delta or zero-page encoding can shrink: the heaviest load a guest can put on
// replication per page written.
// The checksum is the sum (mod 2^32) of dword 2 over all data pages; the guest keeps it by
// subtracting the page's old stamp and adding the new one, so the host can recompute it from
// memory alone and compare.
import { EAX, EBP, EBX, ECX, EDI, EDX, ESI, X86Assembler } from './x86-assembler.ts'

export const GUEST_PAGE_SIZE = 4096

/**
 * Guest-physical layout, identity-mapped: 4 KiB pages for the first 2 MiB (so the code and the
 * page tables can be read-only), 2 MiB pages above. Page 0 stays unmapped (address 0 is not a
 * legal guest address on PVM).
 */
export const GuestLayout = {
  paramsAddress: 0x1000,
  codeAddress: 0x2000,
  pml4Address: 0x3000,
  pdptAddress: 0x4000,
  pageDirectoryAddress: 0x5000,
  pageDirectories: 2,
  pageTableAddress: 0x7000,
  defaultDataStartPage: 8,
  /** EDX at a report: progress (EAX = counter low 32 bits), or done (a bounded run finished). */
  reportProgress: 0,
  reportDone: 1,
  /** Selectors of the user-mode segments (Linux's layout; PVM requires these). */
  userCodeSelector: 0x33,
  userDataSelector: 0x2b
} as const

/** Offsets in the parameter page. Parameters are written by the host before start; state by the guest only. */
export const GuestParamOffsets = {
  magic: 0x00,
  version: 0x04,
  pattern: 0x08,
  dataStartPage: 0x0c,
  dataPages: 0x10,
  hotPages: 0x14,
  hotThreshold: 0x18,
  reportEvery: 0x1c,
  dwordsPerWrite: 0x20,
  maxWrites: 0x24,
  /** Read by the VMM only: the write rate it paces the guest to (0 = as fast as it goes). */
  pacingRate: 0x28,
  memoryPages: 0x2c,
  counterLow: 0x40,
  counterHigh: 0x44,
  checksum: 0x48,
  rngState: 0x4c,
  sequentialNext: 0x50,
  /**
   * The page a write is changing, from before its first store to after its last (0 = none):
   * a guest stopped mid-write (kicked, not at a report) leaves exactly that page torn, and the
   * verifier knows which one.
   */
  inflightPage: 0x54
} as const

export const GUEST_MAGIC = 0x4743594d // "MYCG"
// 3: the `full` pattern (code 3) and its page content. 4: the in-flight page marker.
export const GUEST_LAYOUT_VERSION = 4

export type WritePattern = 'sequential' | 'random' | 'hot' | 'full'
/** `full` picks pages like `random` and writes every byte of them. */
const PATTERN_CODES: Record<WritePattern, number> = { sequential: 0, random: 1, hot: 2, full: 3 }
const PATTERN_NAMES: WritePattern[] = ['sequential', 'random', 'hot', 'full']
export const WRITE_PATTERNS: readonly WritePattern[] = PATTERN_NAMES

export interface PageWriterParams {
  pattern: WritePattern
  /** Pages written per second, paced by the VMM at the guest's progress reports; 0 = unpaced. */
  dirtyRate: number
  /** Pages written between two progress reports (`int3` exits); 0 = never reports. */
  reportEvery: number
  /** Bytes stamped into each written page (12..4096, multiple of 4; always 4096 with `full`). */
  bytesPerWrite: number
  /** First data page (pages below hold parameters and code). */
  dataStartPage: number
  /** Number of data pages the guest writes into. */
  dataPages: number
  /** `hot` pattern: size of the hot set (the first pages of the data region) and the share of writes that go there. */
  hotPages: number
  hotShare: number
  /** Stop (HLT) after this many writes; 0 = run until stopped. */
  maxWrites: number
  /** Seed of the guest's xorshift generator (non-zero). */
  seed: number
}

export class InvalidGuestParamsError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidGuestParamsError'
  }
}

export function defaultPageWriterParams (memoryBytes: number, overrides: Partial<PageWriterParams> = {}): PageWriterParams {
  const pages = Math.floor(memoryBytes / GUEST_PAGE_SIZE)
  const dataStartPage = overrides.dataStartPage ?? GuestLayout.defaultDataStartPage
  const dataPages = overrides.dataPages ?? pages - dataStartPage
  const params: PageWriterParams = {
    pattern: 'random',
    dirtyRate: 0,
    // A whole-page write takes ~16 times a 64-byte one: report more often, so a pause (which
    // waits for a report) comes as soon after the request as with the other patterns.
    reportEvery: overrides.pattern === 'full' ? 8 : 64,
    bytesPerWrite: overrides.pattern === 'full' ? GUEST_PAGE_SIZE : 64,
    dataStartPage,
    dataPages,
    hotPages: Math.max(1, Math.min(dataPages, 256)),
    hotShare: 0.9,
    maxWrites: 0,
    seed: 0x2545f491,
    ...overrides
  }
  validatePageWriterParams(params, memoryBytes)
  return params
}

export function validatePageWriterParams (params: PageWriterParams, memoryBytes: number): void {
  const pages = Math.floor(memoryBytes / GUEST_PAGE_SIZE)
  const integer = (name: string, value: number, min: number, max: number): void => {
    if (!Number.isInteger(value) || value < min || value > max) throw new InvalidGuestParamsError(`${name} must be an integer in [${min}, ${max}], got ${value}`)
  }
  if (!(params.pattern in PATTERN_CODES)) throw new InvalidGuestParamsError(`unknown pattern ${String(params.pattern)}`)
  integer('dataStartPage', params.dataStartPage, GuestLayout.defaultDataStartPage, pages - 1)
  integer('dataPages', params.dataPages, 1, pages - params.dataStartPage)
  integer('hotPages', params.hotPages, 1, params.dataPages)
  // 0: the guest never reports (2^32 writes per batch); only a kick stops it.
  integer('reportEvery', params.reportEvery, 0, 1 << 20)
  integer('bytesPerWrite', params.bytesPerWrite, 12, GUEST_PAGE_SIZE)
  if (params.bytesPerWrite % 4 !== 0) throw new InvalidGuestParamsError('bytesPerWrite must be a multiple of 4')
  if (params.pattern === 'full' && params.bytesPerWrite !== GUEST_PAGE_SIZE) throw new InvalidGuestParamsError(`the full pattern writes whole pages (bytesPerWrite ${GUEST_PAGE_SIZE}), got ${params.bytesPerWrite}`)
  integer('maxWrites', params.maxWrites, 0, 0xffffffff)
  integer('seed', params.seed, 1, 0xffffffff)
  integer('dirtyRate', params.dirtyRate, 0, 0xffffffff)
  if (!(params.hotShare >= 0 && params.hotShare <= 1)) throw new InvalidGuestParamsError(`hotShare must be in [0, 1], got ${params.hotShare}`)
}

/** The user-mode page writer. Independent of the parameters: it reads them from the parameter page at run time. */
export function assemblePageWriter (): Uint8Array {
  const base = GuestLayout.paramsAddress
  const P = Object.fromEntries(Object.entries(GuestParamOffsets).map(([name, offset]) => [name, base + offset])) as Record<keyof typeof GuestParamOffsets, number>
  const a = new X86Assembler()
  a.label('batch')
  a.load(EBP, P.reportEvery)

  a.label('write')
  // Bounded run: stop once the counter reaches maxWrites.
  a.load(EAX, P.maxWrites)
  a.cmpImm(EAX, 0)
  a.jcc('e', 'pick')
  a.load(ECX, P.counterLow)
  a.cmp(ECX, EAX)
  a.jcc('ae', 'done')

  // Pick the page index (relative to the data region) into EBX.
  a.label('pick')
  a.load(EAX, P.pattern)
  a.cmpImm(EAX, PATTERN_CODES.sequential)
  a.jcc('ne', 'hashed')
  a.load(EAX, P.sequentialNext)
  a.mov(EBX, EAX)
  a.inc(EAX)
  a.load(ECX, P.dataPages)
  a.cmp(EAX, ECX)
  a.jcc('b', 'sequentialStore')
  a.xor(EAX, EAX)
  a.label('sequentialStore')
  a.store(P.sequentialNext, EAX)
  a.jmp('stamp')

  // xorshift32; the low byte decides hot or cold, the rest picks the page.
  a.label('hashed')
  a.load(EAX, P.rngState)
  a.mov(EDX, EAX).shl(EDX, 13).xor(EAX, EDX)
  a.mov(EDX, EAX).shr(EDX, 17).xor(EAX, EDX)
  a.mov(EDX, EAX).shl(EDX, 5).xor(EAX, EDX)
  a.store(P.rngState, EAX)
  a.load(ECX, P.dataPages)
  a.mov(EDX, EAX).andImm(EDX, 0xff)
  a.load(ESI, P.hotThreshold)
  a.cmp(EDX, ESI)
  a.jcc('ae', 'cold')
  a.load(ECX, P.hotPages)
  a.label('cold')
  a.shr(EAX, 8)
  a.xor(EDX, EDX)
  a.div(ECX)
  a.mov(EBX, EDX)

  a.label('stamp')
  a.load(ECX, P.dataStartPage)
  a.add(EBX, ECX)
  a.store(P.inflightPage, EBX)
  // counter += 1 (64-bit); c stays in EAX.
  a.load(EAX, P.counterLow)
  a.load(EDX, P.counterHigh)
  a.addImm(EAX, 1)
  a.adcImm(EDX, 0)
  a.store(P.counterLow, EAX)
  a.store(P.counterHigh, EDX)
  // s = (c * 0x9e3779b1) ^ (p * 0x85ebca77); s ^= s >>> 15
  a.imulImm(ESI, EAX, 0x9e3779b1)
  a.imulImm(ECX, EBX, 0x85ebca77)
  a.xor(ESI, ECX)
  a.mov(ECX, ESI).shr(ECX, 15).xor(ESI, ECX)
  // EDI = page address
  a.mov(EDI, EBX).shl(EDI, 12)
  // checksum += s - old stamp
  a.load(ECX, 8, EDI)
  a.load(EDX, P.checksum)
  a.sub(EDX, ECX)
  a.add(EDX, ESI)
  a.store(P.checksum, EDX)
  // The page's header, then the fill.
  a.store(0, EAX, EDI)
  a.store(4, EBX, EDI)
  a.store(8, ESI, EDI)
  a.movImm(ECX, 3)
  a.load(EDX, P.dwordsPerWrite)
  a.load(EAX, P.pattern)
  a.cmpImm(EAX, PATTERN_CODES.full)
  a.jcc('e', 'fullFill')
  a.label('fill')
  a.cmp(ECX, EDX)
  a.jcc('ae', 'written')
  a.mov(EAX, ESI).add(EAX, ECX)
  a.storeIndexed4(EDI, ECX, EAX)
  a.inc(ECX)
  a.jmp('fill')

  // The full pattern: x = s with its low bit set (xorshift never leaves 0), then per dword
  // x ^= x << 13; x ^= x >>> 17; x ^= x << 5, stored. ESI (s) is free once the header is out.
  a.label('fullFill')
  a.mov(EAX, ESI).andImm(EAX, 0xfffffffe).addImm(EAX, 1)
  a.label('fullNext')
  a.cmp(ECX, EDX)
  a.jcc('ae', 'written')
  a.mov(ESI, EAX).shl(ESI, 13).xor(EAX, ESI)
  a.mov(ESI, EAX).shr(ESI, 17).xor(EAX, ESI)
  a.mov(ESI, EAX).shl(ESI, 5).xor(EAX, ESI)
  a.storeIndexed4(EDI, ECX, EAX)
  a.inc(ECX)
  a.jmp('fullNext')

  a.label('written')
  a.xor(ECX, ECX)
  a.store(P.inflightPage, ECX)
  a.dec(EBP)
  a.jcc('ne', 'write')
  a.load(EAX, P.counterLow)
  a.movImm(EDX, GuestLayout.reportProgress)
  a.int3()
  a.jmp('batch')

  a.label('done')
  a.load(EAX, P.counterLow)
  a.movImm(EDX, GuestLayout.reportDone)
  a.int3()
  a.jmp('done')
  return a.assemble()
}

/**
 * Identity map of guest RAM. Accessed and dirty bits are set up front so the page walker never
 * writes these pages, and what the guest only reads (its code, its page tables) is mapped
 * read-only: a shadow MMU may otherwise map a readable page writable on first touch and count
 * it dirty. The guest's dirty set is then only what the guest wrote.
 */
function writeIdentityPageTables (memory: Uint8Array): void {
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength)
  const PRESENT = 0x1n
  const WRITABLE = 0x2n
  const USER = 0x4n
  const ACCESSED = 0x20n
  const DIRTY = 0x40n
  const LARGE = 0x80n
  const table = PRESENT | WRITABLE | USER | ACCESSED
  view.setBigUint64(GuestLayout.pml4Address, BigInt(GuestLayout.pdptAddress) | table, true)
  for (let i = 0; i < GuestLayout.pageDirectories; i++) {
    view.setBigUint64(GuestLayout.pdptAddress + i * 8, BigInt(GuestLayout.pageDirectoryAddress + i * GUEST_PAGE_SIZE) | table, true)
  }
  view.setBigUint64(GuestLayout.pageDirectoryAddress, BigInt(GuestLayout.pageTableAddress) | table, true)
  const pages = Math.floor(memory.byteLength / GUEST_PAGE_SIZE)
  const readOnlyEnd = GuestLayout.pageTableAddress / GUEST_PAGE_SIZE
  for (let page = 1; page < Math.min(512, pages); page++) {
    const address = page * GUEST_PAGE_SIZE
    const readOnly = address >= GuestLayout.codeAddress && page <= readOnlyEnd
    view.setBigUint64(GuestLayout.pageTableAddress + page * 8, BigInt(address) | (readOnly ? PRESENT | USER | ACCESSED : table | DIRTY), true)
  }
  const largePages = Math.ceil(memory.byteLength / 0x200000)
  for (let i = 1; i < largePages; i++) {
    view.setBigUint64(GuestLayout.pageDirectoryAddress + i * 8, (BigInt(i) << 21n) | table | DIRTY | LARGE, true)
  }
}

/** Lay the program, its page tables and its parameters into fresh (zeroed) guest memory. */
export function loadPageWriter (memory: Uint8Array, params: PageWriterParams): void {
  validatePageWriterParams(params, memory.byteLength)
  const code = assemblePageWriter()
  if (code.byteLength > GUEST_PAGE_SIZE) throw new InvalidGuestParamsError('the guest program outgrew its page')
  memory.set(code, GuestLayout.codeAddress)
  writeIdentityPageTables(memory)
  const view = paramView(memory)
  const P = GuestParamOffsets
  const put = (offset: number, value: number): void => { view.setUint32(offset, value >>> 0, true) }
  put(P.magic, GUEST_MAGIC)
  put(P.version, GUEST_LAYOUT_VERSION)
  put(P.pattern, PATTERN_CODES[params.pattern])
  put(P.dataStartPage, params.dataStartPage)
  put(P.dataPages, params.dataPages)
  put(P.hotPages, params.hotPages)
  put(P.hotThreshold, params.pattern === 'hot' ? Math.round(params.hotShare * 256) : 0)
  put(P.reportEvery, params.reportEvery)
  put(P.dwordsPerWrite, params.bytesPerWrite / 4)
  put(P.maxWrites, params.maxWrites)
  put(P.pacingRate, params.dirtyRate)
  put(P.memoryPages, Math.floor(memory.byteLength / GUEST_PAGE_SIZE))
  put(P.rngState, params.seed)
}

function paramView (memory: Uint8Array): DataView {
  return new DataView(memory.buffer, memory.byteOffset + GuestLayout.paramsAddress, GUEST_PAGE_SIZE)
}

/** The parameters a running or restored guest was started with, read back from its parameter page. */
export function readPageWriterParams (memory: Uint8Array): PageWriterParams {
  if (memory.byteLength < GuestLayout.defaultDataStartPage * GUEST_PAGE_SIZE) throw new InvalidGuestParamsError('guest memory is too small to hold a page writer')
  const view = paramView(memory)
  const P = GuestParamOffsets
  const get = (offset: number): number => view.getUint32(offset, true)
  // A version-3 guest (a node not yet upgraded) runs the same way; it only never names an in-flight page.
  if (get(P.magic) !== GUEST_MAGIC || (get(P.version) !== GUEST_LAYOUT_VERSION && get(P.version) !== 3)) {
    throw new InvalidGuestParamsError('guest memory holds no page-writer parameters (wrong magic or version)')
  }
  const pattern = PATTERN_NAMES[get(P.pattern)]
  if (pattern == null) throw new InvalidGuestParamsError(`unknown pattern code ${get(P.pattern)}`)
  const params: PageWriterParams = {
    pattern,
    dirtyRate: get(P.pacingRate),
    reportEvery: get(P.reportEvery),
    bytesPerWrite: get(P.dwordsPerWrite) * 4,
    dataStartPage: get(P.dataStartPage),
    dataPages: get(P.dataPages),
    hotPages: get(P.hotPages),
    hotShare: get(P.hotThreshold) / 256,
    maxWrites: get(P.maxWrites),
    seed: 1
  }
  validatePageWriterParams(params, memory.byteLength)
  return params
}

/** The guest's 64-bit progress counter, read from its memory. */
export function readGuestCounter (memory: Uint8Array): number {
  const view = paramView(memory)
  return view.getUint32(GuestParamOffsets.counterHigh, true) * 0x100000000 + view.getUint32(GuestParamOffsets.counterLow, true)
}

/** The guest's running checksum, read from its memory. */
export function readGuestChecksum (memory: Uint8Array): number {
  return paramView(memory).getUint32(GuestParamOffsets.checksum, true)
}
