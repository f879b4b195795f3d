// Epoch certificates. The check is injected (EpochCertificateVerifier) so the BFT engine's
// quorum certificates can replace the default without touching the primary tier. The default
// certificate is the canonical CBOR list of [signer peer id, Ed25519 signature over
// epochSigningMessage(digest)], sorted by signer:
//   epoch 0: signed by the network root key;
//   epoch n: signed by a quorum (default ⌊2m/3⌋+1 of m) of the committee recorded in epoch n-1.
import { encodeCanonical, decodeCanonical, sign, verify, peerIdOfPublicKey, publicKeyOfPeerId } from '../../crypto/index.ts'
import type { CertifiedHeader } from './epoch.ts'
import type { Signer } from '../entry/entry.ts'

export interface EpochCertificateVerifier {
  /** True if `next` is certified; `previous` is the accepted epoch before it (absent for epoch 0). */
  verify: (next: CertifiedHeader, previous: CertifiedHeader | undefined) => boolean
}

const DOMAIN = 'mycelium/primary-epoch/1'

export function epochSigningMessage (digest: Uint8Array): Uint8Array {
  return encodeCanonical([DOMAIN, digest])
}

/** Signs an epoch digest with each signer (committee members, or the network root for epoch 0). */
export function certifyEpoch (digest: Uint8Array, signers: Signer[]): Uint8Array {
  const message = epochSigningMessage(digest)
  const sigs = signers.map(s => [s.peerId, sign(s.secretKey, message)] as [string, Uint8Array])
  sigs.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  return encodeCanonical(sigs)
}

export function defaultQuorum (committeeSize: number): number {
  return Math.floor(2 * committeeSize / 3) + 1
}

function signersOf (certificate: Uint8Array, digest: Uint8Array): Set<string> {
  const valid = new Set<string>()
  let raw: unknown
  try {
    raw = decodeCanonical(certificate)
  } catch {
    return valid
  }
  if (!Array.isArray(raw) || raw.length > 256) return valid
  const message = epochSigningMessage(digest)
  for (const pair of raw) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || !(pair[1] instanceof Uint8Array)) continue
    let key: Uint8Array
    try {
      key = publicKeyOfPeerId(pair[0])
    } catch {
      continue
    }
    if (verify(key, message, pair[1])) valid.add(pair[0])
  }
  return valid
}

export function committeeCertificateVerifier (options: { rootPublicKey: Uint8Array, quorum?: (committeeSize: number) => number }): EpochCertificateVerifier {
  const rootPeerId = peerIdOfPublicKey(options.rootPublicKey)
  const quorum = options.quorum ?? defaultQuorum
  return {
    verify (next, previous) {
      const signers = signersOf(next.certificate, next.digest)
      if (previous === undefined) return signers.has(rootPeerId)
      const committee = previous.header.committee
      if (committee.length === 0) return signers.has(rootPeerId)
      let n = 0
      for (const member of committee) if (signers.has(member)) n++
      return n >= quorum(committee.length)
    }
  }
}
