// Consensus: signed round messages (bodies re-signed by their sender so mutations reach the
// schema), quorum certificates, slashing evidence, and epoch proposals (deltas).
import { encodeCanonical, sha256, sign } from '../../../crypto/index.ts'
import {
  signMessage, decodeMessage, buildCertificate, verifyCertificate, buildEvidence, verifyEvidence, roundIdOf, commitmentOf, inputDigestOf,
  encodeEpochProposal, decodeEpochProposal, type RoundHeader, type Signed, type Certificate, type Evidence, type CommitBody, type RevealBody
} from '../../../consensus/index.ts'
import { decode as cborgDecode } from 'cborg'
import type { FuzzTarget } from '../engine/target.ts'
import { keyOf, NOW } from './fixtures.ts'
import { sampleEntries } from './spores.ts'

const members = ['m0', 'm1', 'm2', 'm3'].map(keyOf).sort((a, b) => a.peerId < b.peerId ? -1 : 1)
const input = encodeCanonical({ op: 'fuzz', n: 1 })
const header: RoundHeader = { op: 'verdict', key: 'node-down:x', seed: sha256(new Uint8Array([1])), inputDigest: inputDigestOf(input), committee: members.map(m => m.peerId), attempt: 2, f: 1 }
const round = roundIdOf(header)
const result = encodeCanonical(true)

function commitOf (i: number, res = result, nonceByte = i): Signed<CommitBody> {
  const nonce = new Uint8Array(32).fill(nonceByte)
  return signMessage(members[i], { t: 'commit', from: members[i].peerId, round, commitment: commitmentOf(res, nonce, members[i].peerId, round) })
}
function revealOf (i: number, res = result, nonceByte = i): Signed<RevealBody> {
  return signMessage(members[i], { t: 'reveal', from: members[i].peerId, round, result: res, nonce: new Uint8Array(32).fill(nonceByte) })
}

const proposal = signMessage(members[0], { t: 'proposal', from: members[0].peerId, header, input, polka: null })
const relock = signMessage(members[1], { t: 'proposal', from: members[1].peerId, header: { ...header, attempt: 3 }, input, polka: { attempt: 2, commits: [commitOf(0).bytes, commitOf(2).bytes] } })
const messages: Signed[] = [proposal, relock, commitOf(0), commitOf(1), revealOf(2), revealOf(3)]

/** Signs a (mutated) body as its claimed sender when that is one of ours: the schema is reached. */
function signedBy (body: Uint8Array): Uint8Array {
  let from: unknown
  try {
    from = (cborgDecode(body) as Record<string, unknown> | null)?.from
  } catch {}
  const signer = members.find(m => m.peerId === from) ?? members[0]
  return encodeCanonical([body, signRaw(signer.secretKey, body)])
}

function signRaw (secretKey: Uint8Array, body: Uint8Array): Uint8Array {
  return sign(secretKey, encodeCanonical(['mycelium/bft/1', body]))
}

export const bftMessageTarget: FuzzTarget = {
  name: 'bft-message',
  what: 'consensus/messages.ts decodeMessage (proposal, commit, reveal)',
  layers: [
    { name: 'message', structure: 'cbor', seeds: messages.map(m => m.bytes) },
    { name: 'body', structure: 'cbor', seeds: messages.map(m => encodeCanonical(m.body)), wrap: signedBy }
  ],
  decode: (bytes) => decodeMessage(bytes),
  reencode: (m) => encodeCanonical([encodeCanonical((m as Signed).body), (m as Signed).sig]),
  canonical: true
}

const certificate = buildCertificate(header, result, [0, 1, 2].map(i => ({ commit: commitOf(i), reveal: revealOf(i) })))

export const bftCertificateTarget: FuzzTarget = {
  name: 'bft-certificate',
  what: 'consensus/certificate.ts verifyCertificate',
  layers: [{ name: 'certificate', structure: 'cbor', seeds: [certificate.bytes, buildCertificate(header, result, [0, 1, 2, 3].map(i => ({ commit: commitOf(i), reveal: revealOf(i) }))).bytes] }],
  decode: verifyCertificate,
  reencode: (c) => { const cert = c as Certificate; return encodeCanonical({ header: cert.header, result: cert.result, votes: cert.votes.map(v => [v.commit.bytes, v.reveal.bytes]) }) },
  canonical: true
}

const other = encodeCanonical(false)
const evidence = [
  buildEvidence('equivocate', members[1].peerId, header, [commitOf(1), commitOf(1, other, 9)]),
  buildEvidence('mismatch', members[2].peerId, header, [commitOf(2), revealOf(2, other)]),
  buildEvidence('dissent', members[3].peerId, header, [commitOf(3, other), revealOf(3, other)], certificate),
  buildEvidence('bad-proposal', members[0].peerId, header, [proposal])
]

export const bftEvidenceTarget: FuzzTarget = {
  name: 'bft-evidence',
  what: 'consensus/evidence.ts verifyEvidence',
  layers: [{ name: 'evidence', structure: 'cbor', seeds: evidence.map(e => e.bytes) }],
  decode: verifyEvidence,
  reencode: (e) => { const ev = e as Evidence; return encodeCanonical({ reason: ev.reason, accused: ev.accused, header: ev.header, messages: ev.messages, certificate: ev.certificate, other: ev.other }) },
  canonical: true
}

const previous = sampleEntries().map(e => e.bytes)
const base = { epoch: 6, digest: sha256(new Uint8Array([6])), issuedAt: NOW, entries: previous }
const bodies = [
  { epoch: 7, prev: base.digest, issuedAt: NOW + 1000, entries: [...previous.slice(1), sampleEntries()[0].bytes.subarray(0)], candidates: members.map(m => m.peerId) },
  { epoch: 7, prev: base.digest, issuedAt: NOW + 1, entries: previous.slice(3), candidates: [members[0].peerId] }
]

export const epochProposalTarget: FuzzTarget = {
  name: 'epoch-proposal',
  what: 'consensus/epoch-delta.ts decodeEpochProposal',
  layers: [{ name: 'proposal', structure: 'cbor', seeds: bodies.map(b => encodeEpochProposal(b, base)) }],
  decode: (bytes) => decodeEpochProposal(bytes, base)
}

export const consensusTargets = [bftMessageTarget, bftCertificateTarget, bftEvidenceTarget, epochProposalTarget]
