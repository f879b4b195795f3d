// Primary epochs and trust (commit-reveal BFT among sclerotia) inside the daemon.
export { consensusFeature, consensusEpochVerifier, consensusMinCandidates } from './consensus-feature.ts'
export type { ConsensusFeature } from './consensus-feature.ts'
export { consensusSettingsFromEnv, ConsensusSettingsError, EPOCH_INTERVAL_ENV, BFT_F_ENV, BFT_CONDUCT_ENV, BFT_COMMITTEE_ENV, CONDUCTS, DEFAULT_EPOCH_INTERVAL_S, DEFAULT_F } from './consensus-settings.ts'
export type { ConsensusSettings } from './consensus-settings.ts'
