// Signed application bundles (.spore files): the manifest that says what an application is and
// where it may run, the files it runs from, and the signature of whoever publishes it. Which
// signers may publish is the caller's decision; a bundle carries the signer's grant for it.
export { parseManifest, type AppManifest, type AppKind, type Arch, type AppResources, type AppPlacement, type PlacementRole } from './manifest.ts'
export { packBundle, openBundle, bundleDigest, MAX_BUNDLE_BYTES, MAX_GRANT_BYTES, type SignedBundle } from './signed-bundle.ts'
export type { BundleFile } from './contents.ts'
export { MAX_FILES, MAX_PATH_LENGTH } from './bundle-path.ts'
export { packDirectory } from './pack-directory.ts'
export { unpackBundle } from './unpack.ts'
export { entrypointFor } from './entrypoint.ts'
export { InvalidManifestError, InvalidBundleError, UnpackDirectoryNotEmptyError } from './errors.ts'
