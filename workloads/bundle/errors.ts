// Named errors of application bundles, so the CLI and the admin API can print one clear line
// and tell a bad manifest (the author's mistake) from a bad bundle (damaged or forged bytes).

/** The manifest breaks a rule; the message names the field and what it must be. */
export class InvalidManifestError extends Error {
  readonly name = 'InvalidManifestError'
}

/** The bundle's bytes, paths, contents or signature are not acceptable. */
export class InvalidBundleError extends Error {
  readonly name = 'InvalidBundleError'
}

/** A bundle is only unpacked into a directory of its own, so it never mixes with other files. */
export class UnpackDirectoryNotEmptyError extends Error {
  readonly name = 'UnpackDirectoryNotEmptyError'
}
