// Slashing evidence: the accused's own signed messages (plus, where the fault is relative to
// the accepted result, the round's certificate), so anyone can check it offline.
//   equivocate    [two different commits, or two different reveals, of the accused in one
//                 round; or two proposals of the accused for one attempt with different inputs]
//   mismatch      [the accused's commit, its reveal that does not open it]
//   dissent       [the accused's commit, its matching reveal of another result] + certificate
//   conflict      [] + two certificates for one key with different results, both signed by
//                 the accused (carried as certificate and `other`)
//   bad-proposal  [the accused's proposal]; what is wrong with its content is checked by the
//                 operation against the certified chain (RoundEngine.checkEvidence)
// verifyEvidence checks what the bytes prove by themselves; whether the round's committee,
// seed and f are the certified ones is checked by the engine against its chain.
// Wire form: canonical CBOR { reason, accused, header, messages, certificate | null, other | null };
// the evidence id is the hex sha256 of those bytes.
import { encodeCanonical, decodeCanonical, equalBytes, sha256, toHex } from '../crypto/index.ts'
import { EvidenceInvalidError, CertificateInvalidError } from './errors.ts'
import { decodeMessage, parseHeader, type Signed, type CommitBody, type RevealBody } from './messages.ts'
import { roundIdOf, type RoundHeader } from './round.ts'
import { verifyCertificate, opens, signersOf, type Certificate } from './certificate.ts'
import { FAULT_REASONS, type FaultReason } from './fault-rules.ts'

export interface Evidence {
  reason: FaultReason
  accused: string
  header: RoundHeader
  messages: Uint8Array[]
  certificate: Uint8Array | null
  other: Uint8Array | null
  bytes: Uint8Array
  id: string
}

export const MAX_EVIDENCE_BYTES = 1024 * 1024

export function buildEvidence (reason: FaultReason, accused: string, header: RoundHeader, messages: Signed[], certificate?: Certificate, other?: Certificate): Evidence {
  const list = messages.map(m => m.bytes)
  // Equivocating pairs are sorted so two observers of one fault produce the same evidence id.
  if (reason === 'equivocate') list.sort((a, b) => toHex(sha256(a)) < toHex(sha256(b)) ? -1 : 1)
  let [cert, oth] = [certificate?.bytes ?? null, other?.bytes ?? null]
  if (cert !== null && oth !== null && toHex(sha256(oth)) < toHex(sha256(cert))) [cert, oth] = [oth, cert]
  const bytes = encodeCanonical({ reason, accused, header, messages: list, certificate: cert, other: oth })
  return { reason, accused, header, messages: list, certificate: cert, other: oth, bytes, id: toHex(sha256(bytes)) }
}

function bad (why: string): never {
  throw new EvidenceInvalidError(why)
}

function certificateOf (raw: unknown, round: Uint8Array | undefined, at: string): Certificate | undefined {
  if (raw === null) return undefined
  if (!(raw instanceof Uint8Array)) bad(`evidence: ${at} is not bytes`)
  let cert: Certificate
  try {
    cert = verifyCertificate(raw)
  } catch (err) {
    if (err instanceof CertificateInvalidError) bad(`evidence: ${err.message}`)
    throw err
  }
  if (round !== undefined && !equalBytes(roundIdOf(cert.header), round)) bad(`evidence: ${at} of another round`)
  return cert
}

/** Decodes and checks what evidence proves by itself; throws EvidenceInvalidError. */
export function verifyEvidence (bytes: Uint8Array): Evidence {
  if (bytes.length > MAX_EVIDENCE_BYTES) bad('evidence too large')
  let raw: Record<string, unknown>
  let header: RoundHeader
  let messages: Signed[]
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
    if (raw === null || typeof raw !== 'object' || Object.keys(raw).length !== 6) bad('evidence: expected 6 fields')
    header = parseHeader(raw.header)
    if (!Array.isArray(raw.messages) || raw.messages.length > 2) bad('evidence: expected at most 2 messages')
    messages = raw.messages.map(m => {
      if (!(m instanceof Uint8Array)) bad('evidence: message is not bytes')
      return decodeMessage(m)
    })
  } catch (err) {
    if (err instanceof EvidenceInvalidError) throw err
    return bad(`evidence does not decode: ${(err as Error).message}`)
  }
  const reason = raw.reason as FaultReason
  if (!FAULT_REASONS.includes(reason)) bad('evidence: unknown reason')
  const accused = raw.accused
  if (typeof accused !== 'string' || !header.committee.includes(accused)) bad('evidence: accused is not a committee member')
  const round = roundIdOf(header)
  for (const m of messages) {
    if (m.body.from !== accused) bad('evidence: a message of someone else')
    if (m.body.t !== 'proposal' && !equalBytes(m.body.round, round)) bad('evidence: message of another round')
  }
  const certificate = certificateOf(raw.certificate, reason === 'conflict' ? undefined : round, 'certificate')
  const other = certificateOf(raw.other, undefined, 'other certificate')
  const [a, b] = messages
  switch (reason) {
    case 'equivocate': {
      if (a === undefined || b === undefined || a.body.t !== b.body.t) bad('equivocation needs two messages of one kind from the accused')
      if (a.body.t === 'proposal' && b.body.t === 'proposal') {
        const x = a.body.header
        const y = b.body.header
        if (!equalBytes(roundIdOf(x), round) && !equalBytes(roundIdOf(y), round)) bad('evidence: proposals of another round')
        const slot = (h: RoundHeader): Uint8Array => encodeCanonical([h.op, h.key, h.seed, h.committee, h.attempt, h.f])
        if (!equalBytes(slot(x), slot(y)) || equalBytes(x.inputDigest, y.inputDigest)) bad('the proposals are not two inputs for one attempt')
        break
      }
      if (a.body.t === 'proposal') bad('equivocation needs two commits, reveals or proposals')
      if (equalBytes(a.bytes, b.bytes) || sameVote(a, b)) bad('equivocation needs two different messages')
      break
    }
    case 'mismatch': {
      if (b === undefined || a.body.t !== 'commit' || b.body.t !== 'reveal') bad('mismatch needs the accused commit and reveal')
      if (opens(a.body, b.body)) bad('the reveal opens the commitment')
      break
    }
    case 'dissent': {
      if (b === undefined || certificate === undefined || a.body.t !== 'commit' || b.body.t !== 'reveal') bad('dissent needs the accused commit, reveal and the certificate')
      if (!opens(a.body, b.body)) bad('the reveal does not open the commitment')
      if (equalBytes(b.body.result, certificate.result)) bad('the reveal agrees with the certificate')
      break
    }
    case 'conflict': {
      if (messages.length !== 0 || certificate === undefined || other === undefined) bad('conflict needs two certificates and no message')
      const slot = (h: RoundHeader): Uint8Array => encodeCanonical([h.op, h.key, h.seed, h.committee, h.f])
      if (!equalBytes(slot(certificate.header), slot(header)) || !equalBytes(slot(other.header), slot(header))) bad('conflict: the certificates are for another key or committee')
      if (equalBytes(certificate.result, other.result)) bad('conflict: the certificates agree')
      if (!signersOf(certificate).includes(accused) || !signersOf(other).includes(accused)) bad('conflict: the accused did not sign both')
      break
    }
    case 'bad-proposal': {
      if (a === undefined || b !== undefined || a.body.t !== 'proposal') bad('bad-proposal needs the accused proposal')
      if (!equalBytes(roundIdOf(a.body.header), round)) bad('evidence: proposal of another round')
      break
    }
  }
  return { reason, accused, header, messages: messages.map(m => m.bytes), certificate: certificate?.bytes ?? null, other: other?.bytes ?? null, bytes, id: toHex(sha256(bytes)) }
}

function sameVote (a: Signed, b: Signed): boolean {
  if (a.body.t === 'commit' && b.body.t === 'commit') return equalBytes((a.body as CommitBody).commitment, (b.body as CommitBody).commitment)
  const x = a.body as RevealBody
  const y = b.body as RevealBody
  return equalBytes(x.result, y.result) && equalBytes(x.nonce, y.nonce)
}
