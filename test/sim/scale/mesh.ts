// Who is connected to whom. Modelled on a gossipsub mesh (D = 6, topped up from below 4 at
// the next heartbeat): a node joining connects to D/2 random live nodes (they connect back,
// so degrees average about D); when a neighbour goes away a node notices (at once for a clean
// close, after a detection delay for a crash) and, once below 4, dials random live nodes at
// its next heartbeat until it has D again. Connections are the mesh: the
// IHAVE/IWANT gossip gossipsub sends to connected peers outside its mesh is not modelled.
import type { Prng } from '../../../consensus/sim/index.ts'
import type { VirtualClock } from './virtual-clock.ts'

export interface MeshOptions {
  degree: number
  low: number
  heartbeatMs: number
}

export const GOSSIPSUB_MESH: MeshOptions = { degree: 6, low: 4, heartbeatMs: 1000 }

export interface MeshEvents {
  connected: (a: number, b: number) => void
  disconnected: (a: number, b: number) => void
}

export class Mesh {
  private readonly adjacency = new Map<number, Set<number>>()
  private readonly live: number[] = []
  private readonly slot = new Map<number, number>()
  private readonly repairing = new Set<number>()
  private readonly options: MeshOptions
  private readonly rng: Prng
  private readonly clock: VirtualClock
  private readonly events: MeshEvents

  constructor (clock: VirtualClock, rng: Prng, options: MeshOptions, events: MeshEvents) {
    this.clock = clock
    this.rng = rng
    this.options = options
    this.events = events
  }

  neighbours (node: number): ReadonlySet<number> {
    return this.adjacency.get(node) ?? new Set()
  }

  linked (a: number, b: number): boolean {
    return this.adjacency.get(a)?.has(b) === true
  }

  isLive (node: number): boolean {
    return this.slot.has(node)
  }

  liveNodes (): readonly number[] {
    return this.live
  }

  randomLive (): number | undefined {
    return this.live.length === 0 ? undefined : this.live[this.rng.int(0, this.live.length - 1)]
  }

  join (node: number): void {
    this.slot.set(node, this.live.length)
    this.live.push(node)
    this.adjacency.set(node, new Set())
    this.fill(node, Math.ceil(this.options.degree / 2))
    this.repairSoon(node)
  }

  meanDegree (): number {
    let sum = 0
    for (const n of this.live) sum += this.adjacency.get(n)?.size ?? 0
    return this.live.length === 0 ? 0 : sum / this.live.length
  }

  /** The node is gone; each neighbour learns it after `noticeMs(neighbour)`. */
  leave (node: number, noticeMs: () => number): void {
    const at = this.slot.get(node)
    if (at === undefined) return
    const last = this.live.pop() as number
    if (last !== node) {
      this.live[at] = last
      this.slot.set(last, at)
    }
    this.slot.delete(node)
    const around = [...(this.adjacency.get(node) ?? [])]
    this.adjacency.delete(node)
    for (const n of around) {
      this.clock.after(noticeMs(), () => {
        if (this.adjacency.get(n)?.delete(node) !== true) return
        this.events.disconnected(n, node)
        this.repairSoon(n)
      })
    }
  }

  private repairSoon (node: number): void {
    if (this.repairing.has(node) || (this.adjacency.get(node)?.size ?? 0) >= this.options.low) return
    this.repairing.add(node)
    this.clock.after(this.options.heartbeatMs, () => {
      this.repairing.delete(node)
      if (this.isLive(node)) this.fill(node, this.options.degree)
    })
  }

  private fill (node: number, degree: number): void {
    const mine = this.adjacency.get(node) as Set<number>
    for (let tries = 0; mine.size < degree && tries < 4 * degree; tries++) {
      const other = this.randomLive()
      if (other === undefined || other === node || mine.has(other)) continue
      mine.add(other)
      this.adjacency.get(other)?.add(node)
      this.events.connected(node, other)
    }
  }
}
