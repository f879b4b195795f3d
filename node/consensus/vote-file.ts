// The BFT votes of this node (consensus/locks.ts), kept in `<home>/bft-votes.cbor` so a member
// that restarts neither votes twice in an attempt nor forgets the input it is locked on. Each
// change is written (temporary file, fsync, rename) before the vote it records goes out. A file
// that does not decode is set aside as `bft-votes.cbor.broken` and the node starts with none,
// and says so in the log: its old votes are then forgotten, as after losing the disk.
import { existsSync, readFileSync, renameSync } from 'node:fs'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import { writeFileAtomic } from '../home/index.ts'
import type { VoteStore, KeyVotes } from '../../consensus/index.ts'

export const VOTES_FILE = 'bft-votes.cbor'

function isBytes (v: unknown): v is Uint8Array {
  return v instanceof Uint8Array
}

function parseVotes (raw: unknown): KeyVotes {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new TypeError('not a map')
  const v = raw as Record<string, any>
  const out: KeyVotes = {}
  if (v.committed !== undefined) {
    const c = v.committed
    if (!Number.isSafeInteger(c?.attempt) || !isBytes(c.round) || !isBytes(c.inputDigest) || !isBytes(c.result) || !isBytes(c.nonce)) throw new TypeError('bad committed vote')
    out.committed = { attempt: c.attempt, round: c.round, inputDigest: c.inputDigest, result: c.result, nonce: c.nonce }
  }
  if (v.lock !== undefined) {
    const l = v.lock
    if (!Number.isSafeInteger(l?.attempt) || !isBytes(l.inputDigest) || !isBytes(l.result) || !isBytes(l.proposal) || !Array.isArray(l.commits) || !l.commits.every(isBytes)) throw new TypeError('bad lock')
    out.lock = { attempt: l.attempt, inputDigest: l.inputDigest, result: l.result, proposal: l.proposal, commits: l.commits }
  }
  if (v.proposed !== undefined) {
    const p = v.proposed
    if (!Number.isSafeInteger(p?.attempt) || !isBytes(p.proposal)) throw new TypeError('bad proposal record')
    out.proposed = { attempt: p.attempt, proposal: p.proposal }
  }
  return out
}

export class FileVoteStore implements VoteStore {
  private readonly path: string
  private readonly votes = new Map<string, KeyVotes>()

  constructor (path: string, log?: { warn: (obj: object, msg: string) => void }) {
    this.path = path
    if (!existsSync(path)) return
    try {
      const raw = decodeCanonical(readFileSync(path)) as Record<string, unknown>
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new TypeError('not a map')
      for (const [key, v] of Object.entries(raw)) this.votes.set(key, parseVotes(v))
    } catch (err) {
      renameSync(path, `${path}.broken`)
      log?.warn({ file: path, err: (err as Error).message }, 'BFT votes file does not decode; set aside, starting without remembered votes')
    }
  }

  get (key: string): KeyVotes | undefined {
    return this.votes.get(key)
  }

  put (key: string, votes: KeyVotes): void {
    this.votes.set(key, votes)
    this.flush()
  }

  delete (key: string): void {
    if (this.votes.delete(key)) this.flush()
  }

  private flush (): void {
    const plain: Record<string, unknown> = {}
    for (const [k, v] of this.votes) plain[k] = stripUndefined(v)
    writeFileAtomic(this.path, encodeCanonical(plain), 0o600)
  }
}

function stripUndefined (v: KeyVotes): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (v.committed !== undefined) out.committed = v.committed
  if (v.lock !== undefined) out.lock = v.lock
  if (v.proposed !== undefined) out.proposed = v.proposed
  return out
}
