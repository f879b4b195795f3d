// The wire of app-log-follow/1.0.0: one stream on which the node running an instance pushes its
// output to a follower as it is written (`mycelium app logs NAME -f` from another node).
//
// follower → node: the log request of app-logs (log-exchange.ts: app, stream, tail, operator
//   grant), then credit frames `{ credit: n }`: n more bytes of text it takes (0 answers a beat).
// node → follower: first `{ following: true }`, or one final `{ refused }`, `{ missing: true }`
//   or `{ error }`; then `{ text }` frames, each within the credit the follower granted,
//   `{ beat: true }` while idle, and one last `{ end, why }`.
// Every frame is canonical CBOR, length-prefixed. Both ends decode what they read here, once,
// into the types below; anything else is a protocol error that ends the stream, never the node.
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import { protocolPrefix } from '../../membership/index.ts'

/** text bytes a follower takes before it grants more (as the gateway's window) */
export const FOLLOW_WINDOW_BYTES = 256 * 1024
/** the largest text frame: the follower reads 64 KiB at a time; longer text (a tail) is split */
export const MAX_TEXT_FRAME_BYTES = 64 * 1024
/** a frame of either direction, text included, fits in this */
export const MAX_FOLLOW_FRAME_BYTES = MAX_TEXT_FRAME_BYTES + 1024
/** a follower's frames are tiny */
export const MAX_FOLLOWER_FRAME_BYTES = 64
/** how often each end shows the other it is there when nothing else moves */
export const FOLLOW_BEAT_MS = 5_000
/** an end that hears nothing from the other for this long takes it for gone */
export const FOLLOW_SILENCE_MS = 20_000

export function logFollowProtocol (networkId: string): string {
  return `${protocolPrefix(networkId)}/app-log-follow/1.0.0`
}

export class InvalidFollowFrameError extends Error {
  readonly name = 'InvalidFollowFrameError'
}

/** Why a follow ended, as the node says it: the follower's user sees the `why`. */
export type FollowEnd = 'stopped' | 'leaving' | 'cut'

export type NodeFrame =
  | { following: true }
  | { refused: string }
  | { missing: true }
  | { error: string }
  | { text: string }
  | { beat: true }
  | { end: FollowEnd, why: string }

export interface CreditFrame { credit: number }

const ENDS: readonly string[] = ['stopped', 'leaving', 'cut']
const MAX_REASON_CHARS = 500

export function encodeNodeFrame (frame: NodeFrame): Uint8Array {
  return encodeCanonical(frame)
}

export function encodeCreditFrame (frame: CreditFrame): Uint8Array {
  return encodeCanonical(frame)
}

function mapOf (bytes: Uint8Array, what: string): Record<string, unknown> {
  let raw: unknown
  try {
    raw = decodeCanonical(bytes)
  } catch (err) {
    throw new InvalidFollowFrameError(`${what} is not decodable: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array) throw new InvalidFollowFrameError(`${what} has the wrong shape`)
  return raw as Record<string, unknown>
}

function reason (value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_REASON_CHARS) throw new InvalidFollowFrameError(`${what} carries no readable reason`)
  return value
}

/** A frame the node sent, as its follower reads it. */
export function decodeNodeFrame (bytes: Uint8Array): NodeFrame {
  const raw = mapOf(bytes, 'a log follow frame')
  const keys = Object.keys(raw).sort().join(',')
  switch (keys) {
    case 'following': if (raw.following === true) return { following: true }; break
    case 'refused': return { refused: reason(raw.refused, 'a refusal') }
    case 'missing': if (raw.missing === true) return { missing: true }; break
    case 'error': return { error: reason(raw.error, 'an error frame') }
    case 'beat': if (raw.beat === true) return { beat: true }; break
    case 'text':
      if (typeof raw.text === 'string' && Buffer.byteLength(raw.text) <= MAX_TEXT_FRAME_BYTES) return { text: raw.text }
      throw new InvalidFollowFrameError(`a text frame over ${MAX_TEXT_FRAME_BYTES} bytes or not text`)
    case 'end,why':
      if (typeof raw.end === 'string' && ENDS.includes(raw.end)) return { end: raw.end as FollowEnd, why: reason(raw.why, 'an end frame') }
      break
  }
  throw new InvalidFollowFrameError(`a log follow frame of unknown kind (${keys.slice(0, 60) || 'empty'})`)
}

/** A frame the follower sent after its request, as the node reads it. */
export function decodeCreditFrame (bytes: Uint8Array): CreditFrame {
  const raw = mapOf(bytes, 'a follower frame')
  const { credit } = raw
  if (Object.keys(raw).length !== 1 || typeof credit !== 'number' || !Number.isSafeInteger(credit) || credit < 0 || credit > FOLLOW_WINDOW_BYTES) {
    throw new InvalidFollowFrameError(`a follower frame must be { credit: 0 … ${FOLLOW_WINDOW_BYTES} }`)
  }
  return { credit }
}

/** Text cut into frames of at most MAX_TEXT_FRAME_BYTES, never inside a character. */
export function textFrames (text: string): string[] {
  // 16 Ki UTF-16 units are at most 48 KiB of UTF-8
  const UNITS = 16 * 1024
  const out: string[] = []
  let at = 0
  while (at < text.length) {
    let cut = Math.min(text.length, at + UNITS)
    // a surrogate pair stays whole
    if (cut < text.length && cut > at + 1 && (text.charCodeAt(cut) & 0xfc00) === 0xdc00) cut--
    out.push(text.slice(at, cut))
    at = cut
  }
  return out
}
