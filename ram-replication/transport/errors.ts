// Errors of the replication wire and links. Each names one failure so callers can tell them apart.

/** Bytes from the network that do not form a valid frame. */
export class InvalidFrameError extends Error {
  readonly name = 'InvalidFrameError'
}

/** A frame whose integrity hash does not match its content (corrupted or tampered in transit). */
export class FrameIntegrityError extends Error {
  readonly name = 'FrameIntegrityError'
}

/**
 * A sealed frame out of sequence: seen before (replayed, duplicated) or ahead of the next
 * expected one (reordered, dropped). The link is closed: a link only ever carries each frame once, in order.
 */
export class FrameReplayError extends Error {
  readonly name = 'FrameReplayError'
}

/** A length prefix announcing more bytes than the receiver accepts. */
export class FrameTooLargeError extends Error {
  readonly name = 'FrameTooLargeError'
}

/** A delta-encoded page that does not decode against the page it was computed from. */
export class InvalidPageDeltaError extends Error {
  readonly name = 'InvalidPageDeltaError'
}

/** A rhizomorph declined to forward (busy, unknown target, or the target could not be reached). */
export class ForwardRefusedError extends Error {
  readonly name = 'ForwardRefusedError'
  readonly reason: string
  constructor (reason: string) {
    super(`forward refused: ${reason}`)
    this.reason = reason
  }
}

/** The stream under a link closed or was reset; its unacknowledged stripes must be re-sent. */
export class LinkClosedError extends Error {
  readonly name = 'LinkClosedError'
}
