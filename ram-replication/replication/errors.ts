// Errors of the primary's replication engine.

export class ReplicationStoppedError extends Error {
  readonly name = 'ReplicationStoppedError'
}

export class UnknownBackupError extends Error {
  readonly name = 'UnknownBackupError'
}

/** The migration did not complete; the guest runs on at the source, replicated (see the message). */
export class MigrationFailedError extends Error {
  readonly name: string = 'MigrationFailedError'
}

/** The converge rounds did not get small enough in time (throttled or not); the guest runs on at the source. */
export class MigrationNotConvergedError extends MigrationFailedError {
  readonly name: string = 'MigrationNotConvergedError'
}
