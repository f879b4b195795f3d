// The one place that knows libc and the KVM ABI (x86-64): the libc calls through koffi, every
// ioctl number, and the layout of every struct the VMM passes to the kernel. Nothing else in
// the project declares a native type or a KVM number.
import koffi from 'koffi'
import type { TypeObject } from 'koffi'
import { hostPageSize } from './host-page-size.ts'

const libc = koffi.load('libc.so.6')

// libc. `open` is variadic in C (mode_t); on x86-64 the fixed two-argument prototype is the same call.
const openFn = libc.func('int open(const char *path, int flags)')
const closeFn = libc.func('int close(int fd)')
// Typed arguments (a struct by pointer, a typed array) go through the variadic prototype.
const ioctlVariadic = libc.func('int ioctl(int fd, unsigned long request, ...)')
// KVM_RUN itself runs on the vCPU's own thread (vmm/vcpu-thread.ts), which declares its own
// ioctl; this thread only kicks that one.
const tgkillFn = libc.func('int tgkill(int tgid, int tid, int sig)')
const mmapFn = libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)')
const munmapFn = libc.func('int munmap(void *addr, size_t length)')
const mincoreFn = libc.func('int mincore(void *addr, size_t length, _Out_ uint8_t *vec)')
const errnoLocation = libc.func('int *__errno_location()')
const strerrorFn = libc.func('const char *strerror(int errnum)')

export const O_RDWR = 0x2
export const O_CLOEXEC = 0x80000
export const PROT_READ = 0x1
export const PROT_WRITE = 0x2
export const MAP_SHARED = 0x01
export const MAP_ANONYMOUS = 0x20
export const MAP_NORESERVE = 0x4000
export const ENOENT = 2
export const EINTR = 4
export const ESRCH = 3
export const EACCES = 13
export const EPERM = 1

// ioctl request encoding (asm-generic/ioctl.h).
const IOC_NONE = 0
const IOC_WRITE = 1
const IOC_READ = 2
function ioc (dir: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0
}
const KVMIO = 0xae

// Structs. Sizes are checked against the kernel's at load, so a wrong layout fails loudly here.
export const KvmUserspaceMemoryRegion = koffi.struct('kvm_userspace_memory_region', {
  slot: 'uint32_t',
  flags: 'uint32_t',
  guest_phys_addr: 'uint64_t',
  memory_size: 'uint64_t',
  userspace_addr: 'uint64_t'
})
/** `dirty_bitmap` is a union with a u64 in the kernel; we pass the bitmap's address. */
export const KvmDirtyLog = koffi.struct('kvm_dirty_log', {
  slot: 'uint32_t',
  padding1: 'uint32_t',
  dirty_bitmap: 'uint64_t'
})
export const KvmClearDirtyLog = koffi.struct('kvm_clear_dirty_log', {
  slot: 'uint32_t',
  num_pages: 'uint32_t',
  first_page: 'uint64_t',
  dirty_bitmap: 'uint64_t'
})
export const KvmEnableCap = koffi.struct('kvm_enable_cap', {
  cap: 'uint32_t',
  flags: 'uint32_t',
  args: koffi.array('uint64_t', 4),
  pad: koffi.array('uint8_t', 64)
})
export const KvmRegs = koffi.struct('kvm_regs', {
  rax: 'uint64_t',
  rbx: 'uint64_t',
  rcx: 'uint64_t',
  rdx: 'uint64_t',
  rsi: 'uint64_t',
  rdi: 'uint64_t',
  rsp: 'uint64_t',
  rbp: 'uint64_t',
  r8: 'uint64_t',
  r9: 'uint64_t',
  r10: 'uint64_t',
  r11: 'uint64_t',
  r12: 'uint64_t',
  r13: 'uint64_t',
  r14: 'uint64_t',
  r15: 'uint64_t',
  rip: 'uint64_t',
  rflags: 'uint64_t'
})
export const KvmSegment = koffi.struct('kvm_segment', {
  base: 'uint64_t',
  limit: 'uint32_t',
  selector: 'uint16_t',
  type: 'uint8_t',
  present: 'uint8_t',
  dpl: 'uint8_t',
  db: 'uint8_t',
  s: 'uint8_t',
  l: 'uint8_t',
  g: 'uint8_t',
  avl: 'uint8_t',
  unusable: 'uint8_t',
  padding: 'uint8_t'
})
export const KvmDtable = koffi.struct('kvm_dtable', {
  base: 'uint64_t',
  limit: 'uint16_t',
  padding: koffi.array('uint16_t', 3)
})
export const KvmSregs = koffi.struct('kvm_sregs', {
  cs: KvmSegment,
  ds: KvmSegment,
  es: KvmSegment,
  fs: KvmSegment,
  gs: KvmSegment,
  ss: KvmSegment,
  tr: KvmSegment,
  ldt: KvmSegment,
  gdt: KvmDtable,
  idt: KvmDtable,
  cr0: 'uint64_t',
  cr2: 'uint64_t',
  cr3: 'uint64_t',
  cr4: 'uint64_t',
  cr8: 'uint64_t',
  efer: 'uint64_t',
  apic_base: 'uint64_t',
  interrupt_bitmap: koffi.array('uint64_t', 4)
})

export const KVM_REGS_SIZE = 144
export const KVM_SREGS_SIZE = 312
for (const [type, size] of [[KvmUserspaceMemoryRegion, 32], [KvmDirtyLog, 16], [KvmClearDirtyLog, 24], [KvmEnableCap, 104], [KvmRegs, KVM_REGS_SIZE], [KvmSegment, 24], [KvmSregs, KVM_SREGS_SIZE]] as const) {
  if (koffi.sizeof(type) !== size) throw new Error(`KVM struct layout is wrong: ${koffi.sizeof(type)} bytes, the kernel's is ${size}`)
}

// ioctl numbers (linux/kvm.h).
export const KVM_GET_API_VERSION = ioc(IOC_NONE, 0x00, 0)
export const KVM_CREATE_VM = ioc(IOC_NONE, 0x01, 0)
export const KVM_CHECK_EXTENSION = ioc(IOC_NONE, 0x03, 0)
export const KVM_GET_VCPU_MMAP_SIZE = ioc(IOC_NONE, 0x04, 0)
export const KVM_CREATE_VCPU = ioc(IOC_NONE, 0x41, 0)
export const KVM_GET_DIRTY_LOG = ioc(IOC_WRITE, 0x42, 16)
export const KVM_SET_USER_MEMORY_REGION = ioc(IOC_WRITE, 0x46, 32)
export const KVM_SET_TSS_ADDR = ioc(IOC_NONE, 0x47, 0)
export const KVM_RUN = ioc(IOC_NONE, 0x80, 0)
export const KVM_GET_REGS = ioc(IOC_READ, 0x81, KVM_REGS_SIZE)
export const KVM_SET_REGS = ioc(IOC_WRITE, 0x82, KVM_REGS_SIZE)
export const KVM_GET_SREGS = ioc(IOC_READ, 0x83, KVM_SREGS_SIZE)
export const KVM_SET_SREGS = ioc(IOC_WRITE, 0x84, KVM_SREGS_SIZE)
export const KVM_ENABLE_CAP = ioc(IOC_WRITE, 0xa3, 104)
/** `struct kvm_guest_debug` { u32 control; u32 pad; u64 debugreg[8] }. */
export const KVM_SET_GUEST_DEBUG = ioc(IOC_WRITE, 0x9b, 72)
export const KVM_GUESTDBG_ENABLE = 0x1
/** Breakpoint exceptions (`int3`) exit to the VMM instead of reaching the guest. */
export const KVM_GUESTDBG_USE_SW_BP = 0x10000
export const KVM_CLEAR_DIRTY_LOG = ioc(IOC_READ | IOC_WRITE, 0xc0, 24)

export const KVM_API_VERSION = 12

// Capabilities (KVM_CHECK_EXTENSION).
export const KVM_CAP_USER_MEMORY = 3
export const KVM_CAP_SET_TSS_ADDR = 4
export const KVM_CAP_NR_MEMSLOTS = 10
export const KVM_CAP_IMMEDIATE_EXIT = 136
export const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = 168
export const KVM_CAP_DIRTY_LOG_RING = 192
export const KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = 1 << 0

export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0


// Exit reasons (kvm_run.exit_reason).
export const KVM_EXIT_UNKNOWN = 0
export const KVM_EXIT_EXCEPTION = 1
export const KVM_EXIT_IO = 2
export const KVM_EXIT_DEBUG = 4
export const KVM_EXIT_HLT = 5
export const KVM_EXIT_MMIO = 6
export const KVM_EXIT_SHUTDOWN = 8
export const KVM_EXIT_FAIL_ENTRY = 9
export const KVM_EXIT_INTR = 10
export const KVM_EXIT_INTERNAL_ERROR = 17
export const KVM_EXIT_IO_IN = 0
export const KVM_EXIT_IO_OUT = 1

/** Byte offsets into the `struct kvm_run` page shared with the kernel (x86-64). */
export const KvmRunOffsets = {
  immediateExit: 1,
  exitReason: 8,
  ioDirection: 32,
  ioSize: 33,
  ioPort: 34,
  ioCount: 36,
  ioDataOffset: 40,
  debugException: 32,
  debugPc: 40,
  failEntryReason: 32,
  internalSuberror: 32
} as const

/** A libc call failed; `errno` tells why. */
export class NativeCallError extends Error {
  readonly errno: number
  readonly call: string
  constructor (call: string, errno: number) {
    super(`${call} failed: ${describeErrno(errno)} (errno ${errno})`)
    this.name = 'NativeCallError'
    this.call = call
    this.errno = errno
  }
}

export function lastErrno (): number {
  return koffi.decode(errnoLocation(), 'int') as number
}

export function describeErrno (errno: number): string {
  return strerrorFn(errno) as string
}

/** Opaque native pointer as koffi hands it out. */
export type NativePointer = unknown

export function openDevice (path: string): number {
  const fd = openFn(path, O_RDWR | O_CLOEXEC) as number
  if (fd < 0) throw new NativeCallError(`open(${path})`, lastErrno())
  return fd
}

export function closeFd (fd: number): void {
  closeFn(fd)
}

/** ioctl with no argument or an integer argument; returns the (non-negative) result. */
export function ioctlValue (fd: number, request: number, value = 0, name = 'ioctl'): number {
  const result = ioctlVariadic(fd, request, 'unsigned long', value) as number
  if (result < 0) throw new NativeCallError(name, lastErrno())
  return result
}

/** ioctl with a buffer the kernel reads or fills (a struct's raw bytes, a bitmap). */
export function ioctlBytes (fd: number, request: number, bytes: Uint8Array, name = 'ioctl'): number {
  const result = ioctlVariadic(fd, request, 'uint8_t *', bytes) as number
  if (result < 0) throw new NativeCallError(name, lastErrno())
  return result
}

/** ioctl with a struct built from a JS object by koffi (input structs). */
export function ioctlStruct (fd: number, request: number, type: TypeObject, value: Record<string, unknown>, name = 'ioctl'): number {
  const result = ioctlVariadic(fd, request, koffi.pointer(type), value) as number
  if (result < 0) throw new NativeCallError(name, lastErrno())
  return result
}

export function enableSoftwareBreakpoints (vcpuFd: number): void {
  const bytes = new Uint8Array(72)
  new DataView(bytes.buffer).setUint32(0, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP, true)
  ioctlBytes(vcpuFd, KVM_SET_GUEST_DEBUG, bytes, 'KVM_SET_GUEST_DEBUG')
}

/** Byte offsets of registers in raw `struct kvm_regs`. */
export const KvmRegsOffsets = { rax: 0, rdx: 24, rip: 128 } as const

/**
 * Send `signal` to one thread of this process (the vCPU's): a KVM_RUN under way on it returns
 * with EINTR. ESRCH (the thread has ended) is not an error: there is nothing left to stop.
 */
export function signalThread (threadId: number, signal: number): void {
  const result = tgkillFn(process.pid, threadId, signal) as number
  if (result < 0) {
    const errno = lastErrno()
    if (errno !== ESRCH) throw new NativeCallError('tgkill', errno)
  }
}

export function mmapShared (length: number, fd = -1, anonymous = true): NativePointer {
  const flags = MAP_SHARED | (anonymous ? MAP_ANONYMOUS | MAP_NORESERVE : 0)
  const pointer = mmapFn(null, length, PROT_READ | PROT_WRITE, flags, fd, 0)
  // MAP_FAILED is (void *)-1.
  if (pointer == null || koffi.address(pointer) === 0xffffffffffffffffn) throw new NativeCallError('mmap', lastErrno())
  return pointer
}

export function munmap (pointer: NativePointer, length: number): void {
  munmapFn(pointer, length)
}

/**
 * One byte per 4 KiB guest page of a mapping; bit 0 set when the page is resident (an untouched
 * anonymous page reads as zero). mincore answers per host page, which may be larger (16 KiB on a
 * Raspberry Pi 5): each host page's answer is spread over the guest pages it holds.
 */
export function residentPages (pointer: NativePointer, length: number): Uint8Array {
  const hostPage = hostPageSize()
  const host = new Uint8Array(Math.ceil(length / hostPage))
  if ((mincoreFn(pointer, length, host) as number) < 0) throw new NativeCallError('mincore', lastErrno())
  if (hostPage === 4096) return host
  const perHost = hostPage / 4096
  const vector = new Uint8Array(Math.ceil(length / 4096))
  for (let i = 0; i < vector.length; i++) vector[i] = host[Math.floor(i / perHost)]
  return vector
}

export function addressOf (pointer: NativePointer): bigint {
  return koffi.address(pointer)
}

/** An ArrayBuffer over native memory, no copy. */
export function viewOf (pointer: NativePointer, length: number): ArrayBuffer {
  return koffi.view(pointer, length)
}

/** Decode raw `kvm_regs` bytes into named fields (for logs and checks). */
export function decodeRegs (bytes: Uint8Array): Record<string, number | bigint> {
  return koffi.decode(bytes, KvmRegs) as Record<string, number | bigint>
}

export function decodeSregs (bytes: Uint8Array): Record<string, unknown> {
  return koffi.decode(bytes, KvmSregs) as Record<string, unknown>
}

/** Encode named sregs fields into raw `kvm_sregs` bytes. */
export function encodeSregs (value: Record<string, unknown>): Uint8Array {
  const bytes = new Uint8Array(KVM_SREGS_SIZE)
  koffi.encode(bytes, KvmSregs, value)
  return bytes
}

export function encodeRegs (value: Record<string, number | bigint>): Uint8Array {
  const bytes = new Uint8Array(KVM_REGS_SIZE)
  koffi.encode(bytes, KvmRegs, value)
  return bytes
}
