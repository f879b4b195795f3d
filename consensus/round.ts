// What a round is about, and the two hashes that bind it. The round id binds the operation,
// the key (what is decided, e.g. "epoch:12"), the seed, the input digest, the committee (in
// ranking order), the attempt and f, so a vote can never be replayed into another round.
// A commitment binds the member's peer id too: H(result ‖ nonce ‖ peerId ‖ round), so a
// reveal copied from another member never opens the copier's own commitment.
import { encodeCanonical, sha256 } from '../crypto/index.ts'

export interface RoundHeader {
  op: string
  key: string
  seed: Uint8Array
  inputDigest: Uint8Array
  committee: string[]
  attempt: number
  f: number
}

export function roundIdOf (h: RoundHeader): Uint8Array {
  return sha256(encodeCanonical(['mycelium/bft/round/1', h.op, h.key, h.seed, h.inputDigest, h.committee, h.attempt, h.f]))
}

export function commitmentOf (result: Uint8Array, nonce: Uint8Array, peerId: string, roundId: Uint8Array): Uint8Array {
  return sha256(encodeCanonical([result, nonce, peerId, roundId]))
}

export function inputDigestOf (input: Uint8Array): Uint8Array {
  return sha256(input)
}
