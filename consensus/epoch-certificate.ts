// Checking a primary epoch's BFT certificate, for the primary tier's verifier. Given the
// epoch before it (its digest is the seed; its header's committee list is the candidate pool),
// the certificate must be a valid quorum certificate of the "primary-epoch" operation on key
// "epoch:<n>", by exactly the committee the deterministic selection gives (the same for every
// attempt), with the network's configured f, and its result must be the epoch's digest.
import { equalBytes } from '../crypto/index.ts'
import { CertificateInvalidError } from './errors.ts'
import { verifyCertificate, type Certificate } from './certificate.ts'
import { selectCommittee } from './committee.ts'
import { MAX_ATTEMPT } from './messages.ts'

export const EPOCH_OPERATION = 'primary-epoch'

export function epochKey (epoch: number): string {
  return `epoch:${epoch}`
}

/** The part of a certified epoch header the check reads (spores' CertifiedHeader fits). */
export interface CertifiedEpochLike {
  header: { epoch: number, committee: readonly string[] }
  digest: Uint8Array
  certificate: Uint8Array
}

export interface PreviousEpochLike {
  header: { committee: readonly string[] }
  digest: Uint8Array
}

export interface EpochCertificateParams {
  f: number
  committeeSize?: number
  /** Highest attempt number accepted. */
  maxAttempt?: number
}

/** Checks the certificate of `next` against the epoch before it; returns it or throws CertificateInvalidError. */
export function checkEpochCertificate (next: CertifiedEpochLike, previous: PreviousEpochLike, params: EpochCertificateParams): Certificate {
  const cert = verifyCertificate(next.certificate)
  const h = cert.header
  if (h.op !== EPOCH_OPERATION || h.key !== epochKey(next.header.epoch)) throw new CertificateInvalidError('certificate is not for this epoch')
  if (h.attempt > (params.maxAttempt ?? MAX_ATTEMPT)) throw new CertificateInvalidError('certificate attempt out of range')
  if (!equalBytes(h.seed, previous.digest)) throw new CertificateInvalidError('certificate is not seeded by the previous epoch')
  if (h.f !== params.f) throw new CertificateInvalidError(`certificate uses f=${h.f}, the network's f is ${params.f}`)
  const expected = selectCommittee(previous.header.committee, previous.digest, params.f, params.committeeSize ?? 0)
  if (expected.length !== h.committee.length || expected.some((m, i) => m !== h.committee[i])) throw new CertificateInvalidError('certificate committee is not the selected committee')
  if (!equalBytes(cert.result, next.digest)) throw new CertificateInvalidError('certificate certifies another digest')
  return cert
}

export function verifyEpochCertificate (next: CertifiedEpochLike, previous: PreviousEpochLike, params: EpochCertificateParams): boolean {
  try {
    checkEpochCertificate(next, previous, params)
    return true
  } catch (err) {
    if (err instanceof CertificateInvalidError) return false
    throw err
  }
}

/**
 * A verifier for the primary tier (spores' `epochVerifier` option): BFT certificates for
 * epochs after the first, `genesis` (the network root's check) for the first.
 */
export function bftEpochVerifier (params: EpochCertificateParams & { genesis: { verify: (next: any, previous: undefined) => boolean } }): { verify: (next: CertifiedEpochLike, previous: PreviousEpochLike | undefined) => boolean } {
  return {
    verify (next, previous) {
      return previous === undefined ? params.genesis.verify(next, undefined) : verifyEpochCertificate(next, previous, params)
    }
  }
}
