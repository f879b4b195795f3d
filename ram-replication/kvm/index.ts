export { KvmUnavailableError, KVM_DEVICE, assertKvmUsable, kvmOpens, probeKvm } from './capabilities.ts'
export type { KvmCapabilityReport, KvmUnavailableReason } from './capabilities.ts'
export { NativeCallError, decodeRegs, decodeSregs } from './binding.ts'
export { hostPageSize } from './host-page-size.ts'
