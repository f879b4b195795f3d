// Slashing evidence: the accused's own signed messages (plus, where the fault is relative to
// the accepted result, the round's certificate), so anyone can check it offline.
//   equivocate  [two different commits, or two different reveals, of the accused in one round;
//               or two proposals of the accused for one attempt with different inputs]
//   mismatch    [the accused's commit, its reveal that does not open it]
//   copy        [the accused's commit, another member's reveal whose result and nonce open it,
//               an observer's attestation that the reveal came first]. Two members committed to
//               one nonce, so one of them deviated; which one copied is what the observer saw
//               (order is not provable offline), hence attested like withholding
//   dissent     [the accused's commit, its matching reveal of another result] + certificate
//   withhold    [an observer's signed attestation] + certificate (the round was certified, and
//               the accused is not among its signers)
// Wire form: canonical CBOR { reason, accused, header, messages, certificate | null };
// the evidence id is the hex sha256 of those bytes.
import { encodeCanonical, decodeCanonical, equalBytes, sha256, toHex } from '../crypto/index.ts'
import { EvidenceInvalidError, CertificateInvalidError } from './errors.ts'
import { decodeMessage, parseHeader, type Signed, type CommitBody, type RevealBody, type AttestBody } from './messages.ts'
import { roundIdOf, commitmentOf, type RoundHeader } from './round.ts'
import { verifyCertificate, opens, signersOf, type Certificate } from './certificate.ts'
import { FAULT_REASONS, type FaultReason } from './fault-rules.ts'

export interface Evidence {
  reason: FaultReason
  accused: string
  header: RoundHeader
  messages: Uint8Array[]
  certificate: Uint8Array | null
  bytes: Uint8Array
  id: string
}

export const MAX_EVIDENCE_BYTES = 96 * 1024

export function buildEvidence (reason: FaultReason, accused: string, header: RoundHeader, messages: Signed[], certificate?: Certificate): Evidence {
  const list = messages.map(m => m.bytes)
  // Equivocating pairs are sorted so two observers of one fault produce the same evidence id.
  if (reason === 'equivocate') list.sort((a, b) => toHex(a) < toHex(b) ? -1 : 1)
  const cert = certificate?.bytes ?? null
  const bytes = encodeCanonical({ reason, accused, header, messages: list, certificate: cert })
  return { reason, accused, header, messages: list, certificate: cert, bytes, id: toHex(sha256(bytes)) }
}

function bad (why: string): never {
  throw new EvidenceInvalidError(why)
}

/** Decodes and checks evidence; returns it with the attestation (withhold) or throws EvidenceInvalidError. */
export function verifyEvidence (bytes: Uint8Array): Evidence & { attester?: string } {
  if (bytes.length > MAX_EVIDENCE_BYTES) bad('evidence too large')
  let raw: Record<string, unknown>
  let header: RoundHeader
  let messages: Signed[]
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
    if (raw === null || typeof raw !== 'object' || Object.keys(raw).length !== 5) bad('evidence: expected 5 fields')
    header = parseHeader(raw.header)
    if (!Array.isArray(raw.messages) || raw.messages.length === 0 || raw.messages.length > 3) bad('evidence: expected 1 to 3 messages')
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
    const of = m.body.t === 'proposal' ? undefined : m.body.round
    if (of !== undefined && !equalBytes(of, round)) bad('evidence: message of another round')
  }
  let certificate: Certificate | undefined
  if (raw.certificate !== null) {
    if (!(raw.certificate instanceof Uint8Array)) bad('evidence: certificate is not bytes')
    try {
      certificate = verifyCertificate(raw.certificate)
    } catch (err) {
      if (err instanceof CertificateInvalidError) bad(`evidence: ${err.message}`)
      throw err
    }
    if (!equalBytes(roundIdOf(certificate.header), round)) bad('evidence: certificate of another round')
  }
  const [a, b, c] = messages
  let attester: string | undefined
  switch (reason) {
    case 'equivocate': {
      if (a.body.t === 'proposal') {
        if (b === undefined || b.body.t !== 'proposal' || a.body.from !== accused || b.body.from !== accused) bad('proposal equivocation needs two proposals of the accused')
        const x = a.body.header
        const y = b.body.header
        if (!equalBytes(roundIdOf(x), round)) bad('evidence: proposal of another round')
        const slot = (h: RoundHeader): Uint8Array => encodeCanonical([h.op, h.key, h.seed, h.committee, h.attempt, h.f])
        if (!equalBytes(slot(x), slot(y)) || equalBytes(x.inputDigest, y.inputDigest)) bad('the proposals are not two inputs for one attempt')
        break
      }
      if (b === undefined || a.body.from !== accused || b.body.from !== accused || a.body.t !== b.body.t || (a.body.t !== 'commit' && a.body.t !== 'reveal')) bad('equivocation needs two messages of one kind from the accused')
      if (equalBytes(a.bytes, b.bytes) || sameVote(a, b)) bad('equivocation needs two different messages')
      break
    }
    case 'mismatch': {
      if (b === undefined || a.body.t !== 'commit' || b.body.t !== 'reveal' || a.body.from !== accused || b.body.from !== accused) bad('mismatch needs the accused commit and reveal')
      if (opens(a.body, b.body)) bad('the reveal opens the commitment')
      break
    }
    case 'copy': {
      if (b === undefined || c === undefined || a.body.t !== 'commit' || b.body.t !== 'reveal' || a.body.from !== accused || b.body.from === accused || !header.committee.includes(b.body.from)) bad('copy needs the accused commit, another member reveal and an attestation')
      if (!equalBytes(commitmentOf(b.body.result, b.body.nonce, accused, round), a.body.commitment)) bad('the commitment does not open with the other reveal')
      if (c.body.t !== 'attest' || c.body.accused !== accused || c.body.fault !== 'copy') bad('copy attestation missing')
      attester = c.body.from
      break
    }
    case 'dissent': {
      if (b === undefined || certificate === undefined || a.body.t !== 'commit' || b.body.t !== 'reveal' || a.body.from !== accused || b.body.from !== accused) bad('dissent needs the accused commit, reveal and the certificate')
      if (!opens(a.body, b.body)) bad('the reveal does not open the commitment')
      if (equalBytes(b.body.result, certificate.result)) bad('the reveal agrees with the certificate')
      break
    }
    case 'withhold': {
      if (b !== undefined || a.body.t !== 'attest' || certificate === undefined) bad('withholding needs one attestation and the certificate')
      const att = a.body as AttestBody
      if (att.accused !== accused || att.fault === 'copy') bad('attestation names someone else or another fault')
      if (signersOf(certificate).includes(accused)) bad('the accused signed the certificate')
      attester = att.from
      break
    }
  }
  return { reason, accused, header, messages: messages.map(m => m.bytes), certificate: certificate?.bytes ?? null, bytes, id: toHex(sha256(bytes)), attester }
}

function sameVote (a: Signed, b: Signed): boolean {
  if (a.body.t === 'commit' && b.body.t === 'commit') return equalBytes((a.body as CommitBody).commitment, (b.body as CommitBody).commitment)
  const x = a.body as RevealBody
  const y = b.body as RevealBody
  return equalBytes(x.result, y.result) && equalBytes(x.nonce, y.nonce)
}
