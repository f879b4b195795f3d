// Public face of the spores: the node's directory of signed, typed entries in three tiers
// (primary, seed, latent), validation-first merging, gossip, anti-entropy sync and seed files.
export { Spores, SporesNetwork } from './spores.ts'
export type { SporesOptions, SporesNetworkOptions, SporeStats } from './spores.ts'

export { signEntry, signerOf, decodeEntry, verifyEntrySignature, entryId, compareVersions, viewOf, MAX_ENTRY_BYTES, EntryDecodeError } from './entry/entry.ts'
export type { SignedEntry, EntryFields, EntryView, Signer } from './entry/entry.ts'
export { ENTRY_CODECS, ENTRY_TYPES, isEntryType } from './entry/types.ts'
export type { EntryType, EntryValue, NodeValue, HealthValue, TrustValue, UsageValue, ConnectionValue, UptimeValue, ServiceValue, RoleValue, ValueCodec } from './entry/types.ts'
export { SchemaError } from './entry/schema.ts'
export { mayWrite, ownerOf } from './entry/authority.ts'
export type { TrustAuthority } from './entry/authority.ts'
export { ConnectionLog } from './entry/connection-log.ts'

export { TIERS } from './store/buckets.ts'
export type { TierName } from './store/buckets.ts'
export { REJECTION_REASONS, RejectionCounts } from './merge/rejection.ts'
export type { RejectionReason, RejectionSink } from './merge/rejection.ts'
export type { MergeOutcome, MergeTier } from './merge/spore-merger.ts'
export { DEFAULT_LIMITS } from './limits.ts'
export type { SporeLimits } from './limits.ts'
export type { SporeLogger } from './logger.ts'

export { buildHeader, encodeEpoch, decodeEpoch, parseHeader, encodeHeader } from './primary/epoch.ts'
export type { Epoch, EpochHeader, CertifiedHeader } from './primary/epoch.ts'
export { certifyEpoch, committeeCertificateVerifier, defaultQuorum, epochSigningMessage } from './primary/certificate.ts'
export type { EpochCertificateVerifier } from './primary/certificate.ts'
export { EpochInput } from './primary/epoch-input.ts'
export type { EpochBodyInput, BuiltEpochHeader, EpochHeaderFacts } from './primary/epoch-input.ts'

export { encodeSeedFile, decodeSeedFile } from './seed/seed-file.ts'
export type { SeedNode, SeedBody } from './seed/seed-file.ts'
export type { ConfirmNode, SeedImportReport, QuarantinedNode } from './seed/seed-spore.ts'

export type { SelfSummary } from './latent/self-publisher.ts'
export type { SyncResult, SyncStats } from './latent/anti-entropy-sync.ts'
export type { GossipStats } from './latent/latent-gossip.ts'
export { sporeProtocols } from './host.ts'
export type { SporeHost, SporePubSub, SporeNames } from './host.ts'

export { EpochRejectedError, SeedFileError, SeedTruncatedError, SeedFormatError, SeedSignatureError, SeedNetworkMismatchError, SeedMembershipError, SporeProtocolError } from './errors.ts'
