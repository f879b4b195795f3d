// How a committee member behaves at its two decision points. HonestConduct is what every
// node runs; the others are the Byzantine members the engine must withstand, real
// alternative implementations used by tests and fault drills.
import { equalBytes } from '../crypto/index.ts'

export interface Ballot {
  result: Uint8Array
  nonce: Uint8Array
}

/** What a conduct may do: draw a nonce, sign and publish a commitment or a reveal in the current round. */
export interface ConductActions {
  nonce: () => Uint8Array
  commit: (vote: Ballot) => void
  reveal: (vote: Ballot) => void
}

export interface MemberConduct {
  readonly name: string
  /** The member computed the honest result (commit phase). */
  evaluated: (result: Uint8Array, act: ConductActions) => void
  /** The reveal phase opened for this member. */
  revealPhase: (act: ConductActions) => void
  /** Another member's valid reveal was seen. */
  peerRevealed?: (vote: Ballot, act: ConductActions) => void
}

function freshVote (result: Uint8Array, act: ConductActions): Ballot {
  return { result, nonce: act.nonce() }
}

function flipped (result: Uint8Array): Uint8Array {
  const other = result.length === 0 ? new Uint8Array(1) : Uint8Array.from(result)
  other[0] ^= 0xff
  return other
}

export class HonestConduct implements MemberConduct {
  readonly name = 'honest'
  private vote: Ballot | undefined

  /** `ballot`: the one this member committed before a restart (from its vote store). */
  constructor (ballot?: Ballot) {
    this.vote = ballot
  }

  evaluated (result: Uint8Array, act: ConductActions): void {
    this.vote = freshVote(result, act)
    act.commit(this.vote)
  }

  revealPhase (act: ConductActions): void {
    if (this.vote !== undefined) act.reveal(this.vote)
  }
}

/** Commits to and reveals another result than the one it computed. */
export class DissentingConduct implements MemberConduct {
  readonly name = 'dissent'
  private vote: Ballot | undefined
  evaluated (result: Uint8Array, act: ConductActions): void {
    this.vote = freshVote(flipped(result), act)
    act.commit(this.vote)
  }

  revealPhase (act: ConductActions): void {
    if (this.vote !== undefined) act.reveal(this.vote)
  }
}

/** Commits, then never reveals (stalls the round like a crash; f of them are tolerated). */
export class WithholdingConduct implements MemberConduct {
  readonly name = 'withhold'
  evaluated (result: Uint8Array, act: ConductActions): void {
    act.commit(freshVote(result, act))
  }

  revealPhase (): void {}
}

/** Computes, then neither commits nor reveals. */
export class SilentConduct implements MemberConduct {
  readonly name = 'silent'
  evaluated (): void {}
  revealPhase (): void {}
}

/** Signs two different commitments in one round, then reveals one of them. */
export class EquivocatingConduct implements MemberConduct {
  readonly name = 'equivocate'
  private vote: Ballot | undefined
  evaluated (result: Uint8Array, act: ConductActions): void {
    this.vote = freshVote(result, act)
    act.commit(this.vote)
    act.commit(freshVote(flipped(result), act))
  }

  revealPhase (act: ConductActions): void {
    if (this.vote !== undefined) act.reveal(this.vote)
  }
}

/**
 * Does no work: skips its own commitment, waits for another member's reveal, then commits to
 * that reveal's result with a fresh nonce and reveals it. Its commitment comes after the reveal
 * phase opened wherever that reveal was seen, so it is not counted there.
 */
export class CopyingConduct implements MemberConduct {
  readonly name = 'copy'
  private copied = false
  evaluated (): void {}
  revealPhase (): void {}
  peerRevealed (vote: Ballot, act: ConductActions): void {
    if (this.copied) return
    this.copied = true
    const copy = { result: vote.result, nonce: act.nonce() }
    act.commit(copy)
    act.reveal(copy)
  }
}

/** Commits honestly, then reveals a result with another nonce (a reveal that opens nothing). */
export class MismatchingConduct implements MemberConduct {
  readonly name = 'mismatch'
  private vote: Ballot | undefined
  evaluated (result: Uint8Array, act: ConductActions): void {
    this.vote = freshVote(result, act)
    act.commit(this.vote)
  }

  revealPhase (act: ConductActions): void {
    if (this.vote === undefined) return
    let nonce = act.nonce()
    while (equalBytes(nonce, this.vote.nonce)) nonce = act.nonce()
    act.reveal({ result: this.vote.result, nonce })
  }
}

export type ConductName = 'honest' | 'dissent' | 'withhold' | 'silent' | 'equivocate' | 'copy' | 'mismatch'

export function conductOf (name: ConductName): () => MemberConduct {
  switch (name) {
    case 'honest': return () => new HonestConduct()
    case 'dissent': return () => new DissentingConduct()
    case 'withhold': return () => new WithholdingConduct()
    case 'silent': return () => new SilentConduct()
    case 'equivocate': return () => new EquivocatingConduct()
    case 'copy': return () => new CopyingConduct()
    case 'mismatch': return () => new MismatchingConduct()
  }
}
