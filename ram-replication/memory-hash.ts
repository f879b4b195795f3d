// The SHA-256 of a guest's whole memory: what `verifyEpochs` compares between the primary (at a
// checkpoint) and a backup (after applying the same epoch). It is taken a piece at a time over
// several turns of the event loop (turn-budget.ts); the caller keeps the memory still until the
// digest is out.
import { createHash } from 'node:crypto'
import { runInTurns } from './turn-budget.ts'

/** About 0.3 ms of hashing on an idle core, a few ms on a busy one. */
const STEP_BYTES = 256 * 1024

export class MemoryHashing {
  private readonly memory: Uint8Array
  private readonly hash = createHash('sha256')
  private offset = 0
  /** Set once every byte went in. */
  digest?: Uint8Array

  constructor (memory: Uint8Array) {
    this.memory = memory
  }

  /** Hashes the next piece of memory; true once the digest is out. */
  readonly step = (): boolean => {
    if (this.digest != null) return true
    const end = Math.min(this.memory.length, this.offset + STEP_BYTES)
    this.hash.update(this.memory.subarray(this.offset, end))
    this.offset = end
    if (end < this.memory.length) return false
    this.digest = new Uint8Array(this.hash.digest())
    return true
  }
}

/** The memory's SHA-256, hashed over as many turns as it takes. */
export async function hashMemoryInTurns (memory: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
  const hashing = new MemoryHashing(memory)
  await runInTurns(hashing.step, signal)
  return hashing.digest!
}
