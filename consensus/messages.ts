// The signed messages of a round, one canonical form: the wire bytes are the canonical CBOR
// [body, sig] where body is the canonical CBOR of the fields and sig signs
// canonical(["mycelium/bft/1", body]); a receiver verifies over the bytes it received.
//   proposal  { t, from, header, input, polka }   the attempt's proposer opens a round; polka
//                                                  (or null) justifies re-proposing an input: the
//                                                  2f+1 signed commits it got in an earlier
//                                                  attempt { attempt, commits } (see locks.ts)
//   commit    { t, from, round, commitment }      H(result ‖ nonce ‖ from ‖ round)
//   reveal    { t, from, round, result, nonce }   opens the commitment
import { encodeCanonical, decodeCanonical, splitSignedPair, sign, verifyRemembered, publicKeyOfPeerId } from '../crypto/index.ts'
import { ConsensusMessageError } from './errors.ts'
import type { RoundHeader } from './round.ts'

export const MAX_INPUT_BYTES = 768 * 1024
export const MAX_RESULT_BYTES = 4096
export const MAX_COMMITTEE = 64
/** Attempts on one key: enough for hours of failed attempts; a proposal beyond is refused. */
export const MAX_ATTEMPT = 4096
export const MAX_MESSAGE_BYTES = MAX_INPUT_BYTES + 80 * 1024
const DOMAIN = 'mycelium/bft/1'
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{40,60}$/

export interface Polka { attempt: number, commits: Uint8Array[] }
export interface ProposalBody { t: 'proposal', from: string, header: RoundHeader, input: Uint8Array, polka: Polka | null }
export interface CommitBody { t: 'commit', from: string, round: Uint8Array, commitment: Uint8Array }
export interface RevealBody { t: 'reveal', from: string, round: Uint8Array, result: Uint8Array, nonce: Uint8Array }
export type MessageBody = ProposalBody | CommitBody | RevealBody

export interface Signed<B extends MessageBody = MessageBody> {
  body: B
  sig: Uint8Array
  /** The canonical [body, sig] bytes: what is published, stored in certificates and evidence. */
  bytes: Uint8Array
}

export interface MessageSigner {
  peerId: string
  secretKey: Uint8Array
}

// Committees are small and stable: the keys inside their peer ids are parsed once.
const keyCache = new Map<string, Uint8Array>()
const KEY_CACHE_MAX = 1024

function publicKeyOf (peerId: string): Uint8Array {
  let key = keyCache.get(peerId)
  if (key === undefined) {
    key = publicKeyOfPeerId(peerId)
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value as string)
    keyCache.set(peerId, key)
  }
  return key
}

function signingMessage (bodyBytes: Uint8Array): Uint8Array {
  return encodeCanonical([DOMAIN, bodyBytes])
}

export function signMessage<B extends MessageBody> (signer: MessageSigner, body: B): Signed<B> {
  if (body.from !== signer.peerId) throw new TypeError('a message is signed by its sender')
  const bodyBytes = encodeCanonical(body)
  const sig = sign(signer.secretKey, signingMessage(bodyBytes))
  return { body, sig, bytes: encodeCanonical([bodyBytes, sig]) }
}

function fail (why: string): never {
  throw new ConsensusMessageError(why)
}

function bytesOf (v: unknown, at: string, len?: number, max = MAX_INPUT_BYTES): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(`${at}: expected bytes`)
  if (len !== undefined && v.length !== len) fail(`${at}: expected ${len} bytes`)
  if (v.length > max) fail(`${at}: too long`)
  return v
}

function peerOf (v: unknown, at: string): string {
  if (typeof v !== 'string' || !PEER_ID.test(v)) fail(`${at}: not a peer id`)
  return v
}

function uintOf (v: unknown, at: string, max = 2 ** 32): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) fail(`${at}: expected a small unsigned integer`)
  return v
}

function textOf (v: unknown, at: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max || !/^[\x21-\x7e]+$/.test(v)) fail(`${at}: expected printable text`)
  return v
}

function exactKeys (rec: Record<string, unknown>, keys: string[], at: string): void {
  const got = Object.keys(rec)
  if (got.length !== keys.length || !keys.every(k => k in rec)) fail(`${at}: expected fields ${keys.join(',')}`)
}

function mapOf (v: unknown, at: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) fail(`${at}: expected a map`)
  return v as Record<string, unknown>
}

export function parseHeader (raw: unknown): RoundHeader {
  const h = mapOf(raw, 'header')
  exactKeys(h, ['op', 'key', 'seed', 'inputDigest', 'committee', 'attempt', 'f'], 'header')
  if (!Array.isArray(h.committee) || h.committee.length === 0 || h.committee.length > MAX_COMMITTEE) fail('header.committee: expected 1..64 peer ids')
  const committee = h.committee.map((p, i) => peerOf(p, `header.committee[${i}]`))
  if (new Set(committee).size !== committee.length) fail('header.committee: duplicate member')
  const f = uintOf(h.f, 'header.f', 21)
  if (committee.length < 3 * f + 1) fail('header.committee: fewer than 3f+1 members')
  return {
    op: textOf(h.op, 'header.op', 64),
    key: textOf(h.key, 'header.key', 256),
    seed: bytesOf(h.seed, 'header.seed', 32),
    inputDigest: bytesOf(h.inputDigest, 'header.inputDigest', 32),
    committee,
    attempt: uintOf(h.attempt, 'header.attempt', MAX_ATTEMPT),
    f
  }
}

function parsePolka (raw: unknown): Polka | null {
  if (raw === null) return null
  const p = mapOf(raw, 'proposal.polka')
  exactKeys(p, ['attempt', 'commits'], 'proposal.polka')
  if (!Array.isArray(p.commits) || p.commits.length === 0 || p.commits.length > MAX_COMMITTEE) fail('proposal.polka.commits: expected 1..64 commits')
  return { attempt: uintOf(p.attempt, 'proposal.polka.attempt', MAX_ATTEMPT), commits: p.commits.map((c, i) => bytesOf(c, `proposal.polka.commits[${i}]`, undefined, 1024)) }
}

function parseBody (raw: unknown): MessageBody {
  const b = mapOf(raw, 'message')
  switch (b.t) {
    case 'proposal':
      exactKeys(b, ['t', 'from', 'header', 'input', 'polka'], 'proposal')
      return { t: 'proposal', from: peerOf(b.from, 'proposal.from'), header: parseHeader(b.header), input: bytesOf(b.input, 'proposal.input'), polka: parsePolka(b.polka) }
    case 'commit':
      exactKeys(b, ['t', 'from', 'round', 'commitment'], 'commit')
      return { t: 'commit', from: peerOf(b.from, 'commit.from'), round: bytesOf(b.round, 'commit.round', 32), commitment: bytesOf(b.commitment, 'commit.commitment', 32) }
    case 'reveal':
      exactKeys(b, ['t', 'from', 'round', 'result', 'nonce'], 'reveal')
      return { t: 'reveal', from: peerOf(b.from, 'reveal.from'), round: bytesOf(b.round, 'reveal.round', 32), result: bytesOf(b.result, 'reveal.result', undefined, MAX_RESULT_BYTES), nonce: bytesOf(b.nonce, 'reveal.nonce', 32) }
    default:
      return fail('message: unknown kind')
  }
}

// One buffer handed to several handlers (gossip delivers a message once per subscription) is decoded once.
const decoded = new WeakMap<Uint8Array, Signed>()

/** Decodes and checks untrusted bytes: size, canonical CBOR, schema and the sender's signature. */
export function decodeMessage (bytes: Uint8Array): Signed {
  const held = decoded.get(bytes)
  if (held !== undefined) return held
  const m = decodeUncached(bytes)
  decoded.set(bytes, m)
  return m
}

/** The message's [body, sig] envelope, split by its canonical heads (crypto's splitSignedPair). */
function splitEnvelope (bytes: Uint8Array): [Uint8Array, Uint8Array] {
  const pair = splitSignedPair(bytes)
  if (pair === 'not-canonical') return fail('message does not decode: CBOR is not in canonical form')
  if (pair === 'not-a-pair') return fail('message: expected [body, sig]')
  return [pair.body, pair.sig]
}

function decodeUncached (bytes: Uint8Array): Signed {
  if (bytes.length > MAX_MESSAGE_BYTES) fail('message too large')
  const [bodyBytes, sig] = splitEnvelope(bytes)
  let body: unknown
  try {
    body = decodeCanonical(bodyBytes)
  } catch (err) {
    return fail(`message does not decode: ${(err as Error).message}`)
  }
  const parsed = parseBody(body)
  let key: Uint8Array
  try {
    key = publicKeyOf(parsed.from)
  } catch {
    return fail('message: sender is not an Ed25519 peer id')
  }
  if (!verifyRemembered(key, signingMessage(bodyBytes), sig)) fail('message: bad signature')
  return { body: parsed, sig, bytes }
}

export function decodeMessageOf<K extends MessageBody['t']> (bytes: Uint8Array, kind: K): Signed<Extract<MessageBody, { t: K }>> {
  const m = decodeMessage(bytes)
  if (m.body.t !== kind) fail(`expected a ${kind} message`)
  return m as Signed<Extract<MessageBody, { t: K }>>
}
