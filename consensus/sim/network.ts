// The simulated network: topics as in gossipsub (a publisher does not receive its own
// message), with per-message delay, loss, duplication and reordering drawn from the seeded
// generator, partitions (nodes in different groups do not hear each other; a message is
// checked when it arrives, so one in flight when the network splits is lost) and crashed nodes.
import type { ConsensusPubSub } from '../pubsub.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export interface LinkConditions {
  /** Delay of a message: minMs plus up to jitterMs (jitter reorders messages). */
  minMs: number
  jitterMs: number
  loss: number
  duplicate: number
}

export const CALM: LinkConditions = { minMs: 2, jitterMs: 8, loss: 0, duplicate: 0 }

type Handler = (data: Uint8Array) => void

export class SimNetwork {
  private readonly scheduler: Scheduler
  private readonly rng: Prng
  private readonly handlers = new Map<number, Map<string, Set<Handler>>>()
  private readonly partition = new Map<number, number>()
  private readonly down = new Set<number>()
  conditions: LinkConditions = CALM
  /** Messages published and delivered (for the throughput report). */
  sent = 0
  delivered = 0
  /** Watchers see every message published by anyone (the invariant checker reads evidence this way). */
  readonly watchers: Array<(from: number, topic: string, data: Uint8Array) => void> = []

  constructor (scheduler: Scheduler, rng: Prng) {
    this.scheduler = scheduler
    this.rng = rng
  }

  /** Puts nodes in groups; nodes in different groups do not hear each other. */
  split (groups: number[][]): void {
    this.partition.clear()
    groups.forEach((g, i) => { for (const n of g) this.partition.set(n, i) })
  }

  heal (): void {
    this.partition.clear()
  }

  setDown (node: number, down: boolean): void {
    if (down) this.down.add(node)
    else this.down.delete(node)
  }

  isDown (node: number): boolean {
    return this.down.has(node)
  }

  /** True if a and b can talk now. */
  linked (a: number, b: number): boolean {
    return !this.down.has(a) && !this.down.has(b) && (this.partition.get(a) ?? 0) === (this.partition.get(b) ?? 0)
  }

  /** Publishes from `from` to every node linked to it (or only to `only`, for a Byzantine sender). */
  send (from: number, topic: string, data: Uint8Array, only?: readonly number[]): void {
    if (this.down.has(from)) return
    this.sent++
    for (const w of this.watchers) w(from, topic, data)
    for (const [to, topics] of this.handlers) {
      if (to === from || (only !== undefined && !only.includes(to)) || !topics.has(topic)) continue
      const c = this.conditions
      if (this.rng.chance(c.loss)) continue
      const copies = this.rng.chance(c.duplicate) ? 2 : 1
      for (let i = 0; i < copies; i++) {
        this.scheduler.after(c.minMs + this.rng.int(0, c.jitterMs), () => {
          if (!this.linked(from, to)) return
          const hs = this.handlers.get(to)?.get(topic)
          if (hs === undefined) return
          this.delivered++
          for (const h of [...hs]) h(data)
        })
      }
    }
  }

  /** The transport one node's engine uses. */
  pubsubFor (node: number): ConsensusPubSub {
    return {
      publish: async (topic, data) => { this.send(node, topic, data) },
      subscribe: (topic, handler) => {
        let topics = this.handlers.get(node)
        if (topics === undefined) {
          topics = new Map()
          this.handlers.set(node, topics)
        }
        let hs = topics.get(topic)
        if (hs === undefined) {
          hs = new Set()
          topics.set(topic, hs)
        }
        hs.add(handler)
        return () => { hs?.delete(handler) }
      }
    }
  }
}
