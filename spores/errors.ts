// Named errors of the spores library, so the daemon and the CLI can tell failures apart
// without parsing messages.

export class EpochRejectedError extends Error {
  readonly name = 'EpochRejectedError'
}

export class SeedFileError extends Error {
  readonly name: string = 'SeedFileError'
}

/** The file ends before the length its header announces. */
export class SeedTruncatedError extends SeedFileError {
  readonly name = 'SeedTruncatedError'
}

/** Not a seed file, or its body does not decode to the seed schema. */
export class SeedFormatError extends SeedFileError {
  readonly name = 'SeedFormatError'
}

/** The exporter's signature does not cover the file as it is: it was altered. */
export class SeedSignatureError extends SeedFileError {
  readonly name = 'SeedSignatureError'
}

export class SeedNetworkMismatchError extends SeedFileError {
  readonly name = 'SeedNetworkMismatchError'
}

/** The exporter's membership does not check out for this network. */
export class SeedMembershipError extends SeedFileError {
  readonly name = 'SeedMembershipError'
}

export class SporeProtocolError extends Error {
  readonly name = 'SporeProtocolError'
}
