// Errors of the backup side.

/** A stripe that contradicts what the backup knows of the VM (size, origin, order). */
export class ReplicaMismatchError extends Error {
  readonly name = 'ReplicaMismatchError'
}

/** More bytes staged for incomplete epochs than the backup allows. */
export class StagingOverflowError extends Error {
  readonly name = 'StagingOverflowError'
}

/** The replica cannot be resumed (no complete epoch yet, or no way to start a guest here). */
export class ReplicaNotResumableError extends Error {
  readonly name = 'ReplicaNotResumableError'
}

/** The backup refuses a VM it has no room for. */
export class ReplicaCapacityError extends Error {
  readonly name = 'ReplicaCapacityError'
}
