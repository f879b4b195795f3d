// The spores inside the daemon: the feature, and the membership check it gives the spores.
export { sporesFeature, membershipCheck } from './spores-feature.ts'
export type { SporesFeature, SporesFeatureOptions } from './spores-feature.ts'
export { sporesSettingsFromEnv, SporesSettingsError } from './spores-settings.ts'
export type { SporesSettings } from './spores-settings.ts'
export { publishableAddrs } from './self-summary.ts'
export { publishEntry, EntryNotStoredError } from './publish-entry.ts'
