export { PrimaryReplication } from './primary-replication.ts'
export type {
  PrimaryReplicationOptions, BackupTarget, ReplicationState, ReplicationStatus, EpochRecord
} from './primary-replication.ts'
export { migrateGuest } from './migration.ts'
export type { MigrationOptions, MigrationReport, MigrationProgress, MigrationHost } from './migration.ts'
export { BackupSession } from './backup-session.ts'
export type { BackupSessionOptions, BackupStatus, LinkStatus, EpochAcknowledgement } from './backup-session.ts'
export { RateMeter } from './rate-meter.ts'
export { ReplicationStoppedError, UnknownBackupError, MigrationFailedError, MigrationNotConvergedError } from './errors.ts'
export { RamReplication, ramReplication, VmNotFoundError, LeaseUnavailableError } from './replication-service.ts'
export type { RamReplicationOptions, VmListing, ReplicateOptions } from './replication-service.ts'
export { verifyEpochHashes } from './epoch-verifier.ts'
export type { EpochVerdicts } from './epoch-verifier.ts'
