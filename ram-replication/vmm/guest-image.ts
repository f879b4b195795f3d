// Checks on what a guest is started or resumed from, shared by both engines: an image that does
// not fit is refused before any engine touches it.
import { KVM_REGS_SIZE, KVM_SREGS_SIZE } from '../kvm/binding.ts'
import { GUEST_PAGE_SIZE } from '../guest/page-writer.ts'
import { InvalidGuestImageError } from './errors.ts'
import type { GuestImage } from './running-guest.ts'

export function validateMemorySize (bytes: number): void {
  if (!Number.isInteger(bytes) || bytes % GUEST_PAGE_SIZE !== 0 || bytes < 16 * GUEST_PAGE_SIZE || bytes > 2 ** 31) {
    throw new InvalidGuestImageError(`guest memory must be a multiple of ${GUEST_PAGE_SIZE} bytes between 64 KiB and 2 GiB, got ${bytes}`)
  }
}

export function validateGuestImage (image: GuestImage): void {
  validateMemorySize(image.memoryBytes)
  if (image.pageSize !== GUEST_PAGE_SIZE) throw new InvalidGuestImageError(`page size ${image.pageSize} is not ${GUEST_PAGE_SIZE}`)
  if (image.memory.byteLength !== image.memoryBytes) throw new InvalidGuestImageError(`image holds ${image.memory.byteLength} bytes, declares ${image.memoryBytes}`)
  if (image.vcpu.regs.byteLength !== KVM_REGS_SIZE || image.vcpu.sregs.byteLength !== KVM_SREGS_SIZE) {
    throw new InvalidGuestImageError(`vCPU state has ${image.vcpu.regs.byteLength}/${image.vcpu.sregs.byteLength} bytes, expected ${KVM_REGS_SIZE}/${KVM_SREGS_SIZE}`)
  }
}
