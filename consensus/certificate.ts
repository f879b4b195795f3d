// A quorum certificate: the round header, the accepted result and at least 2f+1 votes, each
// a member's signed commitment and its signed reveal. Anyone can check it offline with only
// the members' public keys (embedded in their peer ids): signatures, membership, one vote per
// member, every reveal opening its own commitment, every result equal.
// Wire form: canonical CBOR { header, result, votes: [[commit bytes, reveal bytes], ...] },
// votes sorted by member.
import { encodeCanonical, decodeCanonical, equalBytes, toHex } from '../crypto/index.ts'
import { CertificateInvalidError, ConsensusMessageError } from './errors.ts'
import { decodeMessageOf, parseHeader, MAX_RESULT_BYTES, MAX_COMMITTEE, type Signed, type CommitBody, type RevealBody } from './messages.ts'
import { roundIdOf, commitmentOf, type RoundHeader } from './round.ts'
import { quorumOf } from './committee.ts'

export interface Vote {
  commit: Signed<CommitBody>
  reveal: Signed<RevealBody>
}

export interface Certificate {
  header: RoundHeader
  result: Uint8Array
  votes: Vote[]
  bytes: Uint8Array
}

export const MAX_CERTIFICATE_BYTES = 64 * 1024

export function buildCertificate (header: RoundHeader, result: Uint8Array, votes: Vote[]): Certificate {
  const sorted = [...votes].sort((a, b) => a.commit.body.from < b.commit.body.from ? -1 : 1)
  const bytes = encodeCanonical({ header, result, votes: sorted.map(v => [v.commit.bytes, v.reveal.bytes]) })
  return { header, result, votes: sorted, bytes }
}

/** True if the reveal opens the commitment for this member and round. */
export function opens (commit: CommitBody, reveal: RevealBody): boolean {
  return commit.from === reveal.from && equalBytes(commit.round, reveal.round) &&
    equalBytes(commitmentOf(reveal.result, reveal.nonce, reveal.from, reveal.round), commit.commitment)
}

/** Decodes and fully verifies a certificate; throws CertificateInvalidError. */
export function verifyCertificate (input: Uint8Array | Certificate): Certificate {
  const bytes = input instanceof Uint8Array ? input : input.bytes
  if (bytes.length > MAX_CERTIFICATE_BYTES) throw new CertificateInvalidError('certificate too large')
  let raw: Record<string, unknown>
  let header: RoundHeader
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
    if (raw === null || typeof raw !== 'object' || Object.keys(raw).length !== 3) throw new ConsensusMessageError('expected { header, result, votes }')
    header = parseHeader(raw.header)
  } catch (err) {
    throw new CertificateInvalidError(`certificate does not decode: ${(err as Error).message}`)
  }
  const result = raw.result
  if (!(result instanceof Uint8Array) || result.length > MAX_RESULT_BYTES) throw new CertificateInvalidError('certificate result is not bytes')
  if (!Array.isArray(raw.votes) || raw.votes.length > MAX_COMMITTEE) throw new CertificateInvalidError('certificate votes are not a list')
  const round = roundIdOf(header)
  const members = new Set(header.committee)
  const seen = new Set<string>()
  const nonces = new Set<string>()
  const votes: Vote[] = []
  for (const v of raw.votes) {
    if (!Array.isArray(v) || v.length !== 2 || !(v[0] instanceof Uint8Array) || !(v[1] instanceof Uint8Array)) throw new CertificateInvalidError('certificate vote is not [commit, reveal]')
    let vote: Vote
    try {
      vote = { commit: decodeMessageOf(v[0], 'commit'), reveal: decodeMessageOf(v[1], 'reveal') }
    } catch (err) {
      throw new CertificateInvalidError(`certificate vote is invalid: ${(err as Error).message}`)
    }
    const from = vote.commit.body.from
    if (!members.has(from)) throw new CertificateInvalidError(`certificate vote from a non-member ${from}`)
    if (seen.has(from)) throw new CertificateInvalidError(`certificate holds two votes of ${from}`)
    seen.add(from)
    if (!equalBytes(vote.commit.body.round, round)) throw new CertificateInvalidError('certificate vote belongs to another round')
    if (!opens(vote.commit.body, vote.reveal.body)) throw new CertificateInvalidError(`reveal of ${from} does not open its commitment`)
    if (!equalBytes(vote.reveal.body.result, result)) throw new CertificateInvalidError(`vote of ${from} is for another result`)
    // Two votes opening with one nonce: one member copied the other's reveal.
    const nonce = toHex(vote.reveal.body.nonce)
    if (nonces.has(nonce)) throw new CertificateInvalidError('two votes share a nonce (a copied reveal)')
    nonces.add(nonce)
    votes.push(vote)
  }
  const quorum = quorumOf(header.f, header.committee.length)
  if (votes.length < quorum) throw new CertificateInvalidError(`certificate has ${votes.length} votes, needs ${quorum}`)
  for (let i = 1; i < votes.length; i++) if (votes[i - 1].commit.body.from >= votes[i].commit.body.from) throw new CertificateInvalidError('certificate votes are not sorted')
  return { header, result, votes, bytes }
}

export function signersOf (certificate: Certificate): string[] {
  return certificate.votes.map(v => v.commit.body.from)
}
