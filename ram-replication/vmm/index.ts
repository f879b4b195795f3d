export { KvmGuest, DEFAULT_GUEST_MEMORY_BYTES, kvmGuestRestorer, startKvmGuest } from './kvm-guest.ts'
export type {
  CheckpointTiming, GuestImage, KvmGuestCommonOptions, KvmGuestState, KvmGuestStats, RestoreKvmGuestOptions, StartKvmGuestOptions, VmmLogger
} from './kvm-guest.ts'
export { DirtyPageTracker } from './dirty-page-tracker.ts'
export type { DirtyPageTrackerOptions } from './dirty-page-tracker.ts'
export { GuestMemory, allocateGuestMemory } from './guest-memory.ts'
export { GuestPacer } from './guest-pacer.ts'
export { GuestFaultError, GuestStoppedError, InvalidGuestImageError } from './errors.ts'
