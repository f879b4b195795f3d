// Gossipsub-like flooding over the mesh: a publisher sends a message to its neighbours; a
// node that receives it for the first time validates it (the topic's validator, if any:
// the latent spores' merge) and forwards it to its other neighbours only when accepted, and
// drops later copies (gossipsub's seen cache). Every transmission, duplicates included, is
// counted as traffic with gossipsub's framing overhead; losses are drawn per transmission.
import type { VirtualClock } from './virtual-clock.ts'
import type { Links } from './links.ts'
import type { Mesh } from './mesh.ts'
import type { Traffic, TrafficKind } from './traffic.ts'

/** Gossipsub's per-message framing (RPC, topic, from, seqno, signature, key) around the data. */
export const GOSSIP_ENVELOPE_BYTES = 160

export type Verdict = 'accept' | 'ignore' | 'reject'

export interface GossipReceiver {
  /** Validates and delivers one message; resolves with gossipsub's verdict. */
  receive: (topic: string, data: Uint8Array, from: number) => Verdict | Promise<Verdict>
}

interface Message { topic: string, kind: TrafficKind, data: Uint8Array, seen: Set<number> }

export class GossipMesh {
  private readonly clock: VirtualClock
  private readonly links: Links
  private readonly mesh: Mesh
  private readonly traffic: Traffic
  private readonly receivers = new Map<number, GossipReceiver>()

  constructor (clock: VirtualClock, links: Links, mesh: Mesh, traffic: Traffic) {
    this.clock = clock
    this.links = links
    this.mesh = mesh
    this.traffic = traffic
  }

  attach (node: number, receiver: GossipReceiver): void {
    this.receivers.set(node, receiver)
  }

  detach (node: number): void {
    this.receivers.delete(node)
  }

  publish (from: number, topic: string, kind: TrafficKind, data: Uint8Array): void {
    const m: Message = { topic, kind, data, seen: new Set([from]) }
    this.forward(from, m, -1)
  }

  private forward (node: number, m: Message, except: number): void {
    for (const to of this.mesh.neighbours(node)) if (to !== except) this.transmit(node, to, m)
  }

  private transmit (from: number, to: number, m: Message): void {
    const bytes = m.data.length + GOSSIP_ENVELOPE_BYTES
    this.traffic.out(from, m.kind, bytes)
    if (this.links.lost()) return
    this.traffic.in(to, m.kind, bytes)
    if (m.seen.has(to)) return
    this.clock.after(this.links.delay(from, to, bytes), () => { void this.arrive(from, to, m) })
  }

  private async arrive (from: number, to: number, m: Message): Promise<void> {
    const receiver = this.receivers.get(to)
    if (receiver === undefined || m.seen.has(to) || !this.mesh.linked(to, from)) return
    m.seen.add(to)
    const verdict = await receiver.receive(m.topic, m.data, from)
    if (verdict === 'accept' && this.receivers.get(to) === receiver) this.forward(to, m, from)
  }
}
