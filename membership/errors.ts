// Named errors of network identity and membership, so callers (the CLI above all) can
// print one clear line without parsing messages, and a refusal is classified by its class.

export class MembershipError extends Error {
  readonly name: string = 'MembershipError'
}

export class InvalidCertificateError extends MembershipError {
  readonly name: string = 'InvalidCertificateError'
}

export class CertificateExpiredError extends InvalidCertificateError {
  readonly name = 'CertificateExpiredError'
}

export class CertificateRevokedError extends InvalidCertificateError {
  readonly name = 'CertificateRevokedError'
}

/** The peer speaks for another network: not an attack, just the wrong door. */
export class NetworkMismatchError extends MembershipError {
  readonly name = 'NetworkMismatchError'
}

export class InvalidInviteError extends MembershipError {
  readonly name = 'InvalidInviteError'
}

export class AdmissionRefusedError extends MembershipError {
  readonly name = 'AdmissionRefusedError'
}

/** What kind of refusal a rejected connection was; also sent to the refused peer. */
export type RejectionKind = 'other-network' | 'expired' | 'revoked' | 'admission' | 'timeout' | 'invalid'

export const REJECTION_KINDS: readonly RejectionKind[] = ['other-network', 'expired', 'revoked', 'admission', 'timeout', 'invalid']

/** The other side refused us; `kind` is the class of its reason, as it reported it. */
export class MembershipRefusedError extends MembershipError {
  readonly name = 'MembershipRefusedError'
  readonly kind: RejectionKind

  constructor (message: string, kind: RejectionKind = 'invalid') {
    super(message)
    this.kind = kind
  }
}

/** Classifies a failed handshake by the error's class, never by its message. */
export function rejectionKind (err: Error): RejectionKind {
  if (err instanceof MembershipRefusedError) return err.kind
  if (err instanceof NetworkMismatchError) return 'other-network'
  if (err instanceof CertificateExpiredError) return 'expired'
  if (err instanceof CertificateRevokedError) return 'revoked'
  if (err instanceof AdmissionRefusedError || err instanceof InvalidInviteError) return 'admission'
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return 'timeout'
  return 'invalid'
}
