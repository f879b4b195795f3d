// Errors of the primary's replication engine.

export class ReplicationStoppedError extends Error {
  readonly name = 'ReplicationStoppedError'
}

export class UnknownBackupError extends Error {
  readonly name = 'UnknownBackupError'
}

/** The handover did not complete; the guest is left paused on the primary (see the message). */
export class MigrationFailedError extends Error {
  readonly name = 'MigrationFailedError'
}
