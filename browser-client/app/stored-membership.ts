// What a page keeps between visits (localStorage): its own Ed25519 key and the membership it
// was issued. The format is JSON with base64url bytes; certificates keep their canonical CBOR,
// so the page presents exactly the bytes the network signed.
import { toBase64Url, fromBase64Url } from '../../crypto/index.ts'
import { decodeCertificate, encodeCertificate, isNetworkId, networkIdOf, type CertificateChain } from '../../membership/index.ts'

export const MEMBERSHIP_STORAGE_KEY = 'mycelium.membership.v1'
export const NODE_KEY_STORAGE_KEY = 'mycelium.node-key.v1'
const MAX_SCLEROTIA = 16

export interface StoredMembership {
  networkId: string
  networkName: string
  rootPublicKey: Uint8Array
  chain: CertificateChain
  /** WebSocket multiaddrs (with /p2p/) of sclerotia, dialled on the next visit */
  sclerotia: string[]
}

export class StoredMembershipError extends Error {
  readonly name = 'StoredMembershipError'
}

export function encodeStoredMembership (m: StoredMembership): string {
  return JSON.stringify({
    v: 1,
    networkId: m.networkId,
    networkName: m.networkName,
    rootPublicKey: toBase64Url(m.rootPublicKey),
    chain: m.chain.map(c => toBase64Url(encodeCertificate(c))),
    sclerotia: m.sclerotia.slice(0, MAX_SCLEROTIA)
  })
}

/** Decodes what storage holds; storage is user-editable, so everything is checked. */
export function decodeStoredMembership (text: string): StoredMembership {
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new StoredMembershipError('stored membership is not JSON')
  }
  if (raw === null || typeof raw !== 'object' || raw.v !== 1) throw new StoredMembershipError('stored membership has an unknown format')
  const { networkId, networkName, rootPublicKey, chain, sclerotia } = raw
  if (!isNetworkId(networkId) || typeof networkName !== 'string' || typeof rootPublicKey !== 'string') throw new StoredMembershipError('stored membership names no network')
  const root = fromBase64Url(rootPublicKey)
  if (root.length !== 32 || networkIdOf(root) !== networkId) throw new StoredMembershipError('stored root key does not match the network id')
  if (!Array.isArray(chain) || chain.length === 0 || chain.length > 4 || !chain.every(c => typeof c === 'string')) throw new StoredMembershipError('stored certificate chain is malformed')
  const addrs = Array.isArray(sclerotia) ? sclerotia.filter((a): a is string => typeof a === 'string' && a.startsWith('/') && a.length < 512).slice(0, MAX_SCLEROTIA) : []
  return { networkId, networkName: networkName.slice(0, 100), rootPublicKey: root, chain: chain.map(c => decodeCertificate(fromBase64Url(c as string))), sclerotia: addrs }
}
