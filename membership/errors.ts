// Named errors of network identity and membership, so callers (the CLI above all) can
// print one clear line without parsing messages.

export class MembershipError extends Error {
  readonly name: string = 'MembershipError'
}

export class InvalidCertificateError extends MembershipError {
  readonly name = 'InvalidCertificateError'
}

export class InvalidInviteError extends MembershipError {
  readonly name = 'InvalidInviteError'
}

export class AdmissionRefusedError extends MembershipError {
  readonly name = 'AdmissionRefusedError'
}

export class MembershipRefusedError extends MembershipError {
  readonly name = 'MembershipRefusedError'
}
