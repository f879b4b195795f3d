// The vCPU state both engines start the page writer in: 64-bit long mode, paging on through the
// guest's identity page tables, user mode at the start of the code page. As raw kvm_regs and
// kvm_sregs so KVM loads it as is and the interpreter reads it like any checkpoint.
import type { VcpuState } from '../checkpoint.ts'
import { decodeSregs, encodeRegs, encodeSregs } from '../kvm/binding.ts'
import { GuestLayout } from '../guest/page-writer.ts'

/**
 * The segment and system state of an x86 vCPU after reset (Intel SDM vol. 3, 9.1.1, as KVM's
 * vCPU reset sets it): the interpreter has no KVM to ask, and these fields travel in its
 * checkpoints, so a KVM restore of them must find the values KVM itself would have.
 */
export function resetSregs (): Uint8Array {
  const segment = { base: 0, limit: 0xffff, selector: 0, type: 0x3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0, padding: 0 }
  const table = { base: 0, limit: 0xffff, padding: [0, 0, 0] }
  return encodeSregs({
    cs: { ...segment, selector: 0xf000, base: 0xffff0000, type: 0xb },
    ds: segment,
    es: segment,
    fs: segment,
    gs: segment,
    ss: segment,
    tr: { ...segment, type: 0xb, s: 0 },
    ldt: { ...segment, type: 0x2, s: 0 },
    gdt: table,
    idt: table,
    cr0: 0x60000010,
    cr2: 0,
    cr3: 0,
    cr4: 0,
    cr8: 0,
    efer: 0,
    apic_base: 0xfee00900,
    interrupt_bitmap: [0, 0, 0, 0]
  })
}

/**
 * The vCPU at reset, moved straight to 64-bit long mode (paging on, identity-mapped by the
 * guest's page tables) in user mode at the page writer. Segment state is loaded directly, so the
 * guest needs no GDT of its own (it never reloads a segment).
 */
export function initialVcpuState (reset: VcpuState): VcpuState {
  const code = { base: 0, limit: 0xffffffff, selector: GuestLayout.userCodeSelector, type: 0xb, present: 1, dpl: 3, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0, padding: 0 }
  const data = { ...code, selector: GuestLayout.userDataSelector, type: 0x3, l: 0, db: 1 }
  const sregs = encodeSregs({
    ...decodeSregs(reset.sregs),
    cs: code,
    ss: data,
    ds: data,
    es: data,
    fs: data,
    gs: data,
    cr0: 0x80050033, // PG | AM | WP | NE | ET | MP | PE
    cr3: GuestLayout.pml4Address,
    cr4: 0x20, // PAE
    efer: 0x500 // LMA | LME
  })
  const regs = encodeRegs({
    rax: 0, rbx: 0, rcx: 0, rdx: 0, rsi: 0, rdi: 0, rsp: 0, rbp: 0,
    r8: 0, r9: 0, r10: 0, r11: 0, r12: 0, r13: 0, r14: 0, r15: 0,
    rip: GuestLayout.codeAddress,
    rflags: 0x202
  })
  return { regs, sregs }
}
