// What a member has voted on a key, kept across restarts (Tendermint's locking, with commit as
// prevote and reveal as precommit):
//   committed  the latest attempt this member committed in: its round, input digest, and the
//              ballot (result, nonce) so a restarted member still opens its own commitment.
//              A member commits at most once per attempt and never in an attempt older than
//              this one.
//   lock       set when the member reveals: it saw 2f+1 commits (a polka) for input d in
//              attempt a. It then commits in later attempts only to d, unless a proposal
//              carries a polka for another input from an attempt ≥ a (the lock moves there).
//   proposed   the proposal this member made in an attempt, so a restarted proposer repeats it
//              instead of signing a second one (which would be equivocation).
// Safety (at most f of 3f+1 Byzantine): a certificate for d in attempt a has 2f+1 reveals, so
// f+1 honest members locked on d at a. A polka for d' ≠ d in an attempt a' > a needs 2f+1
// commits, so one of those honest members; it commits d' only with a polka for d' from an
// attempt in [a, a'), which by induction does not exist. Reveals follow a polka and a member
// reveals only in the attempt of its latest commit, so no certificate for d' forms in any
// attempt after a; before a symmetrically. Hence one certified input per key, whatever the
// delays, partitions, restarts and attempt numbers: no timeout is part of the argument.
import { equalBytes } from '../crypto/index.ts'

export interface Committed {
  attempt: number
  round: Uint8Array
  inputDigest: Uint8Array
  result: Uint8Array
  nonce: Uint8Array
}

export interface Lock {
  attempt: number
  inputDigest: Uint8Array
  result: Uint8Array
  /** The signed proposal bytes of the locked attempt and its 2f+1 commits: the lock's justification. */
  proposal: Uint8Array
  commits: Uint8Array[]
}

export interface KeyVotes {
  committed?: Committed
  lock?: Lock
  proposed?: { attempt: number, proposal: Uint8Array }
}

/** Where a member's votes live; a daemon keeps them in a file written before each vote goes out. */
export interface VoteStore {
  get: (key: string) => KeyVotes | undefined
  /** Durable before it returns: the vote it records is published only after. */
  put: (key: string, votes: KeyVotes) => void
  delete: (key: string) => void
}

export class MemoryVoteStore implements VoteStore {
  private readonly votes = new Map<string, KeyVotes>()
  get (key: string): KeyVotes | undefined {
    return this.votes.get(key)
  }

  put (key: string, votes: KeyVotes): void {
    this.votes.set(key, votes)
  }

  delete (key: string): void {
    this.votes.delete(key)
  }

  keys (): string[] {
    return [...this.votes.keys()]
  }
}

/**
 * Why this member must not commit to `inputDigest` in `attempt`, or undefined. `polkaAttempt`
 * is the attempt of a verified polka for the same input carried by the proposal, if any.
 */
export function commitRefusal (votes: KeyVotes | undefined, attempt: number, inputDigest: Uint8Array, polkaAttempt: number | undefined): string | undefined {
  const c = votes?.committed
  if (c !== undefined && attempt <= c.attempt) return attempt === c.attempt ? 'already committed in this attempt' : 'committed in a later attempt'
  const lock = votes?.lock
  if (lock === undefined || equalBytes(lock.inputDigest, inputDigest)) return undefined
  if (polkaAttempt !== undefined && polkaAttempt >= lock.attempt && polkaAttempt < attempt) return undefined
  return `locked on another input since attempt ${lock.attempt}`
}

/** True if this member may reveal in `attempt`: it is the attempt of its latest commit. */
export function mayReveal (votes: KeyVotes | undefined, attempt: number, round: Uint8Array): boolean {
  const c = votes?.committed
  return c !== undefined && c.attempt === attempt && equalBytes(c.round, round)
}
