// What this machine's KVM offers, checked once at start so a missing piece is named plainly
// (no /dev/kvm on a Pi or a laptop without virtualization, no permission, an old kernel)
// instead of surfacing later as an obscure ioctl failure.
import { existsSync } from 'node:fs'
import {
  EACCES, ENOENT, EPERM, KVM_API_VERSION, KVM_CAP_DIRTY_LOG_RING, KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_CAP_NR_MEMSLOTS, KVM_CAP_USER_MEMORY, KVM_CHECK_EXTENSION,
  KVM_GET_API_VERSION, NativeCallError, closeFd, describeErrno, ioctlValue, openDevice
} from './binding.ts'

export const KVM_DEVICE = '/dev/kvm'

export type KvmUnavailableReason = 'no-device' | 'permission-denied' | 'open-failed' | 'api-mismatch' | 'capability-missing'

/** KVM cannot run guests here; `reason` says which check failed, the message says it in words. */
export class KvmUnavailableError extends Error {
  readonly reason: KvmUnavailableReason
  constructor (reason: KvmUnavailableReason, message: string) {
    super(message)
    this.name = 'KvmUnavailableError'
    this.reason = reason
  }
}

export interface KvmCapabilityReport {
  device: string
  /** The device opened read-write. */
  opens: boolean
  apiVersion?: number
  userMemory: boolean
  immediateExit: boolean
  /** Flags KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 supports (bit 0: manual protect, bit 1: initially set); 0 when absent. */
  manualDirtyLogProtect: number
  /** Largest dirty ring in bytes; 0 when absent. */
  dirtyLogRingBytes: number
  maxMemorySlots: number
  /** Empty when the VMM can run here; otherwise one line per missing piece. */
  missing: string[]
  error?: KvmUnavailableError
}

function openError (error: unknown): KvmUnavailableError {
  const errno = error instanceof NativeCallError ? error.errno : -1
  if (errno === ENOENT || !existsSync(KVM_DEVICE)) {
    return new KvmUnavailableError('no-device', `${KVM_DEVICE} does not exist: this machine has no KVM (no hardware virtualization, or the kvm module is not loaded)`)
  }
  if (errno === EACCES || errno === EPERM) {
    return new KvmUnavailableError('permission-denied', `${KVM_DEVICE} exists but cannot be opened read-write by this user: permission denied (add the user to the kvm group or run as root)`)
  }
  return new KvmUnavailableError('open-failed', `${KVM_DEVICE} cannot be opened: ${errno >= 0 ? describeErrno(errno) : String(error)}`)
}

/** Probe /dev/kvm without throwing; the report says what works and what is missing. */
export function probeKvm (): KvmCapabilityReport {
  const report: KvmCapabilityReport = {
    device: KVM_DEVICE,
    opens: false,
    userMemory: false,
    immediateExit: false,
    manualDirtyLogProtect: 0,
    dirtyLogRingBytes: 0,
    maxMemorySlots: 0,
    missing: []
  }
  let fd: number
  try {
    fd = openDevice(KVM_DEVICE)
  } catch (error) {
    report.error = openError(error)
    report.missing.push(report.error.message)
    return report
  }
  try {
    report.opens = true
    report.apiVersion = ioctlValue(fd, KVM_GET_API_VERSION, 0, 'KVM_GET_API_VERSION')
    if (report.apiVersion !== KVM_API_VERSION) {
      report.error = new KvmUnavailableError('api-mismatch', `KVM API version is ${report.apiVersion}, this VMM speaks version ${KVM_API_VERSION}`)
      report.missing.push(report.error.message)
      return report
    }
    const check = (cap: number): number => ioctlValue(fd, KVM_CHECK_EXTENSION, cap, 'KVM_CHECK_EXTENSION')
    report.userMemory = check(KVM_CAP_USER_MEMORY) > 0
    report.immediateExit = check(KVM_CAP_IMMEDIATE_EXIT) > 0
    report.manualDirtyLogProtect = check(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
    report.dirtyLogRingBytes = check(KVM_CAP_DIRTY_LOG_RING)
    report.maxMemorySlots = check(KVM_CAP_NR_MEMSLOTS)
    // Required: user memory slots. The others are reported; the VMM uses manual protect when present.
    if (!report.userMemory) report.missing.push('KVM_CAP_USER_MEMORY is missing: guest memory cannot be registered')
    if (report.missing.length > 0) {
      report.error = new KvmUnavailableError('capability-missing', `KVM lacks what this VMM needs: ${report.missing.join('; ')}`)
    }
    return report
  } finally {
    closeFd(fd)
  }
}

/** Throw KvmUnavailableError unless guests can run here. Manual dirty-log protect is optional (plain KVM_GET_DIRTY_LOG works without it). */
export function assertKvmUsable (): KvmCapabilityReport {
  const report = probeKvm()
  if (report.error != null) throw report.error
  return report
}

/** True when /dev/kvm opens read-write (the condition under which KVM tests must run). */
export function kvmOpens (): boolean {
  try {
    closeFd(openDevice(KVM_DEVICE))
    return true
  } catch {
    return false
  }
}
