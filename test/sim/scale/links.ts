// Links between simulated nodes: each node sits at a point of a unit square (its distance to
// another adds latency, as between cities), has an uplink of its own bandwidth (a message
// takes size / bandwidth to leave it; queueing behind earlier messages is not modelled), and
// every gossip transmission is lost with a fixed probability. Streams are reliable, as TCP
// is: a loss there costs a retransmission timeout instead of the message.
import type { Prng } from '../../../consensus/sim/index.ts'

export interface LinkModel {
  /** Latency between two nodes at the same place. */
  baseMs: number
  /** Added latency across the whole square (diagonal ≈ 1.4 × this). */
  spanMs: number
  jitterMs: number
  /** Probability that one gossip transmission is lost. */
  loss: number
  /** A lost stream segment is resent after this long. */
  retransmitMs: number
}

export const DEFAULT_LINKS: LinkModel = { baseMs: 5, spanMs: 80, jitterMs: 10, loss: 0.01, retransmitMs: 200 }

export class Links {
  readonly model: LinkModel
  private readonly rng: Prng
  private readonly x: number[] = []
  private readonly y: number[] = []
  private readonly uplinkMbps: number[] = []

  constructor (rng: Prng, model: LinkModel) {
    this.rng = rng
    this.model = model
  }

  place (node: number, uplinkMbps: number): void {
    this.x[node] = this.rng.float()
    this.y[node] = this.rng.float()
    this.uplinkMbps[node] = uplinkMbps
  }

  /** One-way delay of `bytes` from a to b. */
  delay (a: number, b: number, bytes: number): number {
    const d = Math.hypot(this.x[a] - this.x[b], this.y[a] - this.y[b])
    const serialisation = (bytes * 8) / (this.uplinkMbps[a] * 1000)
    return Math.max(1, Math.round(this.model.baseMs + d * this.model.spanMs + this.rng.int(0, this.model.jitterMs) + serialisation))
  }

  lost (): boolean {
    return this.rng.chance(this.model.loss)
  }
}
