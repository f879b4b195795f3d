// The project's page-writer guest as a multiboot kernel, so QEMU can run (and migrate) exactly
// the program Mycelium's VMM runs: the same code, parameters and identity page tables from
// `loadPageWriter`, in the same guest-physical places.
//
// QEMU's multiboot loader enters a kernel in 32-bit protected mode with paging off. The file is
// an "a.out kludge" kernel loaded at 1 MiB: a multiboot header, a 32-bit trampoline, then a copy
// of guest pages 1–7 (parameters, code, page tables). The trampoline copies those pages down to
// 0x1000, turns on long mode with the guest's own page tables and jumps to the page writer's
// code in a 64-bit code segment. The writer then runs at CPL 0 instead of 3, which changes
// nothing it does. It must never report (`reportEvery: 0`): an `int3` there has no handler and
// would reset the machine. Its data pages start at 2 MiB, clear of the BIOS areas and of this
// kernel.
import { GUEST_PAGE_SIZE, GuestLayout, defaultPageWriterParams, loadPageWriter } from '../../../ram-replication/index.ts'
import type { PageWriterParams } from '../../../ram-replication/index.ts'

const LOAD_ADDRESS = 0x100000
const MULTIBOOT_MAGIC = 0x1badb002
/** Bit 16: the load addresses are in the header (a.out kludge, not ELF). */
const MULTIBOOT_AOUT_KLUDGE = 1 << 16
const HEADER_BYTES = 32
/** Offset of the copied guest pages in the file (one page in). */
const PAYLOAD_OFFSET = GUEST_PAGE_SIZE
/** Guest pages 1..7: parameters, code, page tables. */
const PAYLOAD_PAGES = GuestLayout.defaultDataStartPage - 1
/** Data pages start here (2 MiB), clear of the BIOS areas below 1 MiB and of this kernel at 1 MiB. */
export const QEMU_DATA_START_PAGE = 512
const CODE_SELECTOR = 0x08

/** The kernel file for `qemu-system-x86_64 -kernel`, and the parameters its guest runs with. */
export function multibootPageWriter (memoryBytes: number, workload: Partial<PageWriterParams>): { kernel: Uint8Array, params: PageWriterParams } {
  if (workload.reportEvery !== 0) throw new Error('under QEMU the guest must never report (reportEvery 0): an int3 there has no handler')
  const params = defaultPageWriterParams(memoryBytes, { dataStartPage: QEMU_DATA_START_PAGE, ...workload })
  const memory = new Uint8Array(memoryBytes)
  loadPageWriter(memory, params)
  const payload = memory.subarray(GUEST_PAGE_SIZE, GUEST_PAGE_SIZE * (1 + PAYLOAD_PAGES))

  const kernel = new Uint8Array(PAYLOAD_OFFSET + payload.length)
  const view = new DataView(kernel.buffer)
  const entry = LOAD_ADDRESS + HEADER_BYTES
  // The header: magic, flags, checksum, then header/load/load-end/bss-end/entry addresses.
  const header = [MULTIBOOT_MAGIC, MULTIBOOT_AOUT_KLUDGE, (-(MULTIBOOT_MAGIC + MULTIBOOT_AOUT_KLUDGE)) >>> 0,
    LOAD_ADDRESS, LOAD_ADDRESS, LOAD_ADDRESS + kernel.length, 0, entry]
  header.forEach((value, i) => { view.setUint32(i * 4, value >>> 0, true) })

  // GDT (null, 64-bit code) and its pointer, in the page's last bytes before the payload.
  const gdtOffset = PAYLOAD_OFFSET - 32
  view.setBigUint64(gdtOffset, 0n, true)
  view.setBigUint64(gdtOffset + 8, 0x00209a0000000000n, true)
  const gdtrOffset = gdtOffset + 16
  view.setUint16(gdtrOffset, 15, true)
  view.setUint32(gdtrOffset + 2, LOAD_ADDRESS + gdtOffset, true)

  const code: number[] = []
  const imm32 = (value: number): void => { code.push(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff) }
  code.push(0xfa) // cli
  code.push(0xbe); imm32(LOAD_ADDRESS + PAYLOAD_OFFSET) // mov esi, payload
  code.push(0xbf); imm32(GUEST_PAGE_SIZE) // mov edi, 0x1000
  code.push(0xb9); imm32(payload.length / 4) // mov ecx, dwords
  code.push(0xfc, 0xf3, 0xa5) // cld; rep movsd
  code.push(0x0f, 0x01, 0x15); imm32(LOAD_ADDRESS + gdtrOffset) // lgdt [gdtr]
  code.push(0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0) // cr4 |= PAE
  code.push(0xb8); imm32(GuestLayout.pml4Address) // mov eax, pml4
  code.push(0x0f, 0x22, 0xd8) // mov cr3, eax
  code.push(0xb9); imm32(0xc0000080) // mov ecx, IA32_EFER
  code.push(0x0f, 0x32, 0x0d); imm32(0x100) // rdmsr; or eax, LME
  code.push(0x0f, 0x30) // wrmsr
  code.push(0x0f, 0x20, 0xc0, 0x0d); imm32(0x80000000) // mov eax, cr0; or eax, PG
  code.push(0x0f, 0x22, 0xc0) // mov cr0, eax (long mode is active from here)
  code.push(0xea); imm32(GuestLayout.codeAddress); code.push(CODE_SELECTOR, 0) // jmp far 0x08:code
  if (HEADER_BYTES + code.length > gdtOffset) throw new Error('the trampoline outgrew its page')
  kernel.set(code, HEADER_BYTES)
  kernel.set(payload, PAYLOAD_OFFSET)
  return { kernel, params }
}
