export { KvmGuest, DEFAULT_GUEST_MEMORY_BYTES, kvmGuestRestorer, startKvmGuest } from './kvm-guest.ts'
export type { KvmGuestCommonOptions, KvmGuestState, KvmGuestStats, RestoreKvmGuestOptions, StartKvmGuestOptions } from './kvm-guest.ts'
export {
  InterpretedGuest, DEFAULT_INTERPRETED_MEMORY_BYTES, interpretedGuestRestorer, startInterpretedGuest
} from './interpreted-guest.ts'
export type { InterpretedGuestStats, RestoreInterpretedGuestOptions, StartInterpretedGuestOptions } from './interpreted-guest.ts'
export { GUEST_ENGINES } from './running-guest.ts'
export type {
  CheckpointTiming, GuestCommonOptions, GuestEngine, GuestImage, RunningGuestRestorer, GuestState, GuestStats, RunningGuest, VmmLogger
} from './running-guest.ts'
export { availableEngines, defaultEngine, engineRestorer, engineUnavailable, guestRestorer, parseGuestEngine, startGuest } from './engines.ts'
export type { StartGuestOptions } from './engines.ts'
export { DirtyPageTracker } from './dirty-page-tracker.ts'
export type { DirtyPageTrackerOptions } from './dirty-page-tracker.ts'
export { GuestMemory, allocateGuestMemory } from './guest-memory.ts'
export { GuestPacer } from './guest-pacer.ts'
export { EngineUnavailableError, GuestFaultError, GuestStoppedError, InvalidGuestImageError } from './errors.ts'
