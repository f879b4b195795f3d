// What crosses the simulated links, per node and kind, counted while a measurement window is
// open; node-seconds of life in the window are counted too, so rates are per live node per
// second even while nodes come and go.
export const KINDS = ['roles', 'latent', 'sync'] as const
export type TrafficKind = typeof KINDS[number]

interface Counter { msgs: number, bytes: number }

export class Traffic {
  measuring = false
  private readonly sent = new Map<TrafficKind, Counter>(KINDS.map(k => [k, { msgs: 0, bytes: 0 }]))
  private readonly received = new Map<TrafficKind, Counter>(KINDS.map(k => [k, { msgs: 0, bytes: 0 }]))
  /** Largest bytes sent + received by one node in the window. */
  private readonly perNode = new Map<number, number>()
  nodeMs = 0

  out (node: number, kind: TrafficKind, bytes: number): void {
    if (!this.measuring) return
    const c = this.sent.get(kind) as Counter
    c.msgs++
    c.bytes += bytes
    this.perNode.set(node, (this.perNode.get(node) ?? 0) + bytes)
  }

  in (node: number, kind: TrafficKind, bytes: number): void {
    if (!this.measuring) return
    const c = this.received.get(kind) as Counter
    c.msgs++
    c.bytes += bytes
    this.perNode.set(node, (this.perNode.get(node) ?? 0) + bytes)
  }

  /** Per live node per second: messages and bytes in and out, by kind and in all. */
  rates (): { kind: TrafficKind | 'all', msgsIn: number, msgsOut: number, bytesIn: number, bytesOut: number }[] {
    const s = this.nodeMs / 1000
    const rows = KINDS.map(kind => {
      const i = this.received.get(kind) as Counter
      const o = this.sent.get(kind) as Counter
      return { kind, msgsIn: i.msgs / s, msgsOut: o.msgs / s, bytesIn: i.bytes / s, bytesOut: o.bytes / s }
    })
    const all = rows.reduce((a, r) => ({ kind: 'all' as const, msgsIn: a.msgsIn + r.msgsIn, msgsOut: a.msgsOut + r.msgsOut, bytesIn: a.bytesIn + r.bytesIn, bytesOut: a.bytesOut + r.bytesOut }), { kind: 'all' as const, msgsIn: 0, msgsOut: 0, bytesIn: 0, bytesOut: 0 })
    return [...rows, all]
  }

  /** The busiest node's bytes (in + out) per second of the window, given the window's length. */
  busiest (windowMs: number): number {
    let max = 0
    for (const v of this.perNode.values()) max = Math.max(max, v)
    return max / (windowMs / 1000)
  }
}
