// The .spore file: an application's manifest and files, signed by whoever publishes it.
//
// Layout: the canonical CBOR array [body, signature], where body is the canonical CBOR map
// { ctx: 'mycelium-bundle-v1', manifest, files: [{ path, bytes, executable }] in path order,
// signer: Ed25519 public key, grant?: bytes, signedAt: ms }, and signature is the signer's
// Ed25519 signature over the body bytes. `ctx` keeps a bundle signature from ever passing for
// another signed message of the project. Both levels must be canonical and the body carries
// the manifest complete (defaults written out), so one bundle has exactly one encoding: any
// changed byte fails to decode, breaks canonical form or breaks the signature.
//
// Who may sign is not decided here: the signer's key and its grant go to the caller.
import { sign, verify, getPublicKey, sha256, encodeCanonical, decodeCanonical, equalBytes, toHex, peerIdOfPublicKey, NonCanonicalEncodingError } from '../../crypto/index.ts'
import { checkContents, type BundleFile } from './contents.ts'
import { InvalidBundleError, InvalidManifestError } from './errors.ts'
import { parseManifest, type AppManifest } from './manifest.ts'
import { MAX_FILES } from './bundle-path.ts'
import { shown } from './shown.ts'

export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024
/** A grant is a certificate or two, never megabytes. */
export const MAX_GRANT_BYTES = 64 * 1024

const CONTEXT = 'mycelium-bundle-v1'
const PUBLIC_KEY_BYTES = 32
const SIGNATURE_BYTES = 64
const BODY_FIELDS = ['ctx', 'manifest', 'files', 'signer', 'grant', 'signedAt']
const FILE_FIELDS = ['path', 'bytes', 'executable']

export interface SignedBundle {
  /** Hex SHA-256 of the whole bundle's bytes. */
  digest: string
  manifest: AppManifest
  /** In path order. */
  files: BundleFile[]
  signerPublicKey: Uint8Array
  /** Peer id of the signer. */
  signer: string
  /** What the signer attached to show it may sign (a root-signed certificate); not read here. */
  grant?: Uint8Array
  signedAt: number
}

export function bundleDigest (bytes: Uint8Array): string {
  return toHex(sha256(bytes))
}

export function packBundle (input: { manifest: AppManifest, files: BundleFile[], secretKey: Uint8Array, grant?: Uint8Array, signedAt?: number }): Uint8Array {
  const manifest = parseManifest(input.manifest)
  const files = [...input.files].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
  checkContents(manifest, files)
  if (input.grant !== undefined && input.grant.length > MAX_GRANT_BYTES) throw new InvalidBundleError(`grant is ${input.grant.length} bytes, at most ${MAX_GRANT_BYTES} are allowed`)
  const signedAt = input.signedAt ?? Date.now()
  if (!Number.isSafeInteger(signedAt) || signedAt < 0) throw new InvalidBundleError(`signedAt must be a time in milliseconds, got ${shown(signedAt)}`)

  const body: Record<string, unknown> = {
    ctx: CONTEXT,
    manifest,
    files: files.map(f => ({ path: f.path, bytes: f.bytes, executable: f.executable })),
    signer: getPublicKey(input.secretKey),
    signedAt
  }
  if (input.grant !== undefined) body.grant = input.grant
  const bodyBytes = encodeCanonical(body)
  const bytes = encodeCanonical([bodyBytes, sign(input.secretKey, bodyBytes)])
  if (bytes.length > MAX_BUNDLE_BYTES) throw new InvalidBundleError(`the bundle is ${bytes.length} bytes, more than the ${MAX_BUNDLE_BYTES} a node accepts`)
  return bytes
}

/** Decodes and checks a bundle from anywhere (network, disk, upload); nothing unchecked comes out. */
export function openBundle (bytes: Uint8Array, options: { maxBytes?: number } = {}): SignedBundle {
  const maxBytes = options.maxBytes ?? MAX_BUNDLE_BYTES
  if (bytes.length > maxBytes) throw new InvalidBundleError(`the bundle is ${bytes.length} bytes, more than the ${maxBytes} accepted`)

  const envelope = decoded(bytes, 'the bundle')
  if (!Array.isArray(envelope) || envelope.length !== 2 || !(envelope[0] instanceof Uint8Array) || !isBytes(envelope[1], SIGNATURE_BYTES)) {
    throw new InvalidBundleError('the bundle is not [body, signature]')
  }
  const [bodyBytes, signature] = envelope as [Uint8Array, Uint8Array]
  const body = decoded(bodyBytes, 'the bundle body')
  if (!isMap(body)) throw new InvalidBundleError('the bundle body is not a map')
  if (body.ctx !== CONTEXT) throw new InvalidBundleError(`not a Mycelium application bundle of this version (ctx ${shown(body.ctx)})`)
  if (!isBytes(body.signer, PUBLIC_KEY_BYTES)) throw new InvalidBundleError('the bundle has no Ed25519 signer key')
  // nothing of an unsigned body is read beyond what checking its signature needs
  if (!verify(body.signer, bodyBytes, signature)) throw new InvalidBundleError('the signature does not match: the bundle was changed after it was signed')

  const unknown = Object.keys(body).find(k => !BODY_FIELDS.includes(k))
  if (unknown !== undefined) throw new InvalidBundleError(`the bundle body has an unknown field ${shown(unknown)}`)
  const { manifest: rawManifest, files: rawFiles, signer, grant, signedAt } = body
  if (!Number.isSafeInteger(signedAt) || (signedAt as number) < 0) throw new InvalidBundleError(`signedAt must be a time in milliseconds, got ${shown(signedAt)}`)
  if (grant !== undefined && !(grant instanceof Uint8Array && grant.length <= MAX_GRANT_BYTES)) throw new InvalidBundleError(`grant must be at most ${MAX_GRANT_BYTES} bytes, got ${shown(grant)}`)
  const manifest = manifestOf(rawManifest)
  const files = filesOf(rawFiles)
  checkContents(manifest, files)
  inPathOrder(files)

  const bundle: SignedBundle = { digest: bundleDigest(bytes), manifest, files, signerPublicKey: signer, signer: peerIdOfPublicKey(signer), signedAt: signedAt as number }
  if (grant !== undefined) bundle.grant = grant
  return bundle
}

function manifestOf (raw: unknown): AppManifest {
  let manifest: AppManifest
  try {
    manifest = parseManifest(raw)
  } catch (err) {
    if (err instanceof InvalidManifestError) throw new InvalidBundleError(`the manifest is invalid: ${err.message}`)
    throw err
  }
  // defaults are written out when packing: a manifest without them is a second encoding
  if (!equalBytes(encodeCanonical(manifest), encodeCanonical(raw))) throw new InvalidBundleError('the manifest is not in the complete form packBundle writes')
  return manifest
}

function filesOf (raw: unknown): BundleFile[] {
  if (!Array.isArray(raw) || raw.length > MAX_FILES) throw new InvalidBundleError(`files must be a list of at most ${MAX_FILES} files, got ${shown(raw)}`)
  return raw.map((f: unknown, i): BundleFile => {
    if (!isMap(f) || Object.keys(f).length !== FILE_FIELDS.length || !FILE_FIELDS.every(k => k in f)) throw new InvalidBundleError(`files[${i}] must be { path, bytes, executable }`)
    if (typeof f.path !== 'string' || !(f.bytes instanceof Uint8Array) || typeof f.executable !== 'boolean') throw new InvalidBundleError(`files[${i}] has a field of the wrong type`)
    return { path: f.path, bytes: f.bytes, executable: f.executable }
  })
}

/** packBundle sorts, so another order is another encoding of the same bundle. */
function inPathOrder (files: readonly BundleFile[]): void {
  for (let i = 1; i < files.length; i++) {
    if (!(files[i - 1].path < files[i].path)) throw new InvalidBundleError(`files are not in path order at ${shown(files[i].path)}`)
  }
}

function decoded (bytes: Uint8Array, what: string): unknown {
  try {
    return decodeCanonical(bytes)
  } catch (err) {
    if (err instanceof NonCanonicalEncodingError) throw new InvalidBundleError(`${what} is not canonical CBOR: ${err.message}`)
    throw err
  }
}

function isMap (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
}

function isBytes (value: unknown, length: number): value is Uint8Array {
  return value instanceof Uint8Array && value.length === length
}
