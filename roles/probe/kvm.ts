import { openSync, closeSync } from 'node:fs'

/**
 * Whether this process can drive KVM: the device must open read-write, which is what the
 * VMM needs. Existence or permission bits alone say nothing inside containers.
 */
export function kvmUsable (path = '/dev/kvm'): boolean {
  try {
    closeSync(openSync(path, 'r+'))
    return true
  } catch {
    return false
  }
}
