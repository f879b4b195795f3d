// Named errors of the consensus engine, so callers tell failures apart without parsing text.

export type RoundFailureReason = 'no-proposal' | 'no-quorum' | 'aborted' | 'read-only' | 'already-certified' | 'locked' | 'invalid-input' | 'not-enough-candidates'

/** A round that did not reach 2f+1 matching reveals; nothing of it was applied. */
export class RoundFailedError extends Error {
  readonly name = 'RoundFailedError'
  readonly reason: RoundFailureReason
  readonly attempt: number

  constructor (reason: RoundFailureReason, attempt: number, message?: string) {
    super(message ?? `round failed (${reason}) at attempt ${attempt}`)
    this.reason = reason
    this.attempt = attempt
  }
}

/** Bytes from the network that are not a well-formed, validly signed consensus message. */
export class ConsensusMessageError extends Error {
  readonly name = 'ConsensusMessageError'
}

export class CertificateInvalidError extends Error {
  readonly name = 'CertificateInvalidError'
}

/** A certified epoch whose number is already certified with another digest: never adopted. */
export class ConflictingEpochError extends Error {
  readonly name = 'ConflictingEpochError'
}

/** A certified epoch that does not extend the held chain (gap or wrong predecessor). */
export class EpochGapError extends Error {
  readonly name = 'EpochGapError'
}

/** Slashing evidence that does not prove what it claims. */
export class EvidenceInvalidError extends Error {
  readonly name = 'EvidenceInvalidError'
}

/** A proposed epoch input that is not a delta on the previous epoch (a TypeError, as before it had a name). */
export class EpochProposalError extends TypeError {
  readonly name = 'EpochProposalError'
}
