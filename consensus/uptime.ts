// Differential uptime/processing: how long each peer has been seen present (valid messages or a
// live connection, gaps longer than gapMs not counted) and how many certified rounds it voted
// in. During a partition each side weighs itself against the peers it can no longer reach.
export interface UptimeRecord {
  peerId: string
  uptimeMs: number
  rounds: number
}

export class DifferentialUptime {
  private readonly peers = new Map<string, { last: number, upMs: number, rounds: number }>()
  private readonly clock: () => number
  private readonly gapMs: number

  constructor (options: { clock?: () => number, gapMs?: number } = {}) {
    this.clock = options.clock ?? Date.now
    this.gapMs = options.gapMs ?? 120_000
  }

  /** The peer was present now (a valid message from it, or a connection to it). */
  seen (peerId: string): void {
    const now = this.clock()
    const p = this.peers.get(peerId)
    if (p === undefined) {
      this.peers.set(peerId, { last: now, upMs: 0, rounds: 0 })
      return
    }
    const gap = now - p.last
    if (gap > 0 && gap <= this.gapMs) p.upMs += gap
    if (gap > 0) p.last = now
  }

  /** The peer voted in a certified round. */
  processed (peerId: string): void {
    this.seen(peerId)
    const p = this.peers.get(peerId)
    if (p !== undefined) p.rounds++
  }

  /** Weight of a peer: seconds of presence plus one per round voted. */
  weight (peerId: string): number {
    const p = this.peers.get(peerId)
    return p === undefined ? 0 : p.upMs / 1000 + p.rounds
  }

  records (): UptimeRecord[] {
    return [...this.peers.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([peerId, p]) => ({ peerId, uptimeMs: p.upMs, rounds: p.rounds }))
  }
}
