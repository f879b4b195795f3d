// Signed role advertisements. The signature covers canonical CBOR of the fields and of the
// topic (which carries the network id), so an advertisement cannot be replayed into another
// network, and its origin is checked from the peer id alone (Ed25519 keys are inline).
import { sign, verify, encodeCanonical, publicKeyOfPeerId } from '../../crypto/index.ts'
import { openSignedEnvelope } from './signed-envelope.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { isRole, type Role, type SclerotiumFit } from '../policy/role.ts'

export const MAX_ADVERTISEMENT_BYTES = 4096
export const MAX_ADVERTISED_ADDRS = 8
const DOMAIN = 'mycelium/role-advertisement/v1'

export interface RoleAdvertisement {
  peerId: string
  role: Role
  /** A sclerotium pinned by its operator. */
  dedicated: boolean
  /** Any operator pin: balancing never moves this node. */
  pinned: boolean
  score: number
  fit: SclerotiumFit
  /** Its hysteresis allows a role change now. */
  movable: boolean
  /** Strictly increasing per node; older or repeated advertisements are dropped. */
  seq: number
  issuedAt: number
  /** Where to dial it (hyphae use them to find sclerotia). */
  addrs: string[]
}

export class InvalidRoleAdvertisementError extends Error {
  readonly name = 'InvalidRoleAdvertisementError'
}

const FIELDS = ['addrs', 'dedicated', 'fit', 'issuedAt', 'movable', 'peerId', 'pinned', 'role', 'score', 'seq']
const FITS = new Set(['preferred', 'possible', 'unfit'])

function signedBytes (ad: RoleAdvertisement, topic: string): Uint8Array {
  return encodeCanonical({ domain: DOMAIN, topic, ad })
}

export function encodeRoleAdvertisement (ad: RoleAdvertisement, secretKey: Uint8Array, topic: string): Uint8Array {
  const bytes = encodeCanonical({ ad, sig: sign(secretKey, signedBytes(ad, topic)) })
  if (bytes.length > MAX_ADVERTISEMENT_BYTES) throw new InvalidRoleAdvertisementError(`advertisement of ${bytes.length} bytes exceeds ${MAX_ADVERTISEMENT_BYTES}`)
  return bytes
}

function isUint (v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max
}

/** Decodes, validates and verifies one advertisement received on `topic`. */
export function decodeRoleAdvertisement (bytes: Uint8Array, topic: string): RoleAdvertisement {
  const fail = (why: string): never => { throw new InvalidRoleAdvertisementError(why) }
  const { body: a, sig } = openSignedEnvelope(bytes, 'advertisement', MAX_ADVERTISEMENT_BYTES, 'ad', FIELDS, fail)
  if (typeof a.peerId !== 'string' || a.peerId.length > 128) fail('peerId must be a string')
  if (!isRole(a.role)) fail('role is not a role')
  if (typeof a.dedicated !== 'boolean' || typeof a.pinned !== 'boolean' || typeof a.movable !== 'boolean') fail('flags must be booleans')
  if (!isUint(a.score, 100)) fail('score must be an integer 0–100')
  if (typeof a.fit !== 'string' || !FITS.has(a.fit)) fail('fit is not a fit')
  if (!isUint(a.seq) || !isUint(a.issuedAt)) fail('seq and issuedAt must be non-negative integers')
  if (a.dedicated === true && (a.role !== 'sclerotium' || a.pinned !== true)) fail('only a pinned sclerotium is dedicated')
  if (!Array.isArray(a.addrs) || a.addrs.length > MAX_ADVERTISED_ADDRS) fail(`addrs must be a list of at most ${MAX_ADVERTISED_ADDRS}`)
  for (const addr of a.addrs as unknown[]) {
    if (typeof addr !== 'string' || addr.length > 256) fail('addrs must be short strings')
    try { multiaddr(addr as string) } catch { fail('addrs must be multiaddrs') }
  }
  let publicKey: Uint8Array
  try {
    publicKey = publicKeyOfPeerId(a.peerId as string)
  } catch (err) {
    return fail((err as Error).message)
  }
  const ad = a as unknown as RoleAdvertisement
  if (!verify(publicKey, signedBytes(ad, topic), sig)) fail('signature does not verify')
  return ad
}
