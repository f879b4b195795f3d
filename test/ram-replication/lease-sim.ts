// A deterministic world for the lease rules: nodes with their own drifting clocks, messages
// that are delayed, lost or cut by partitions, and crashes. Every node's LeaseVoter,
// LeaseHolder and the failover rule run unchanged; only time and the network are simulated.
import { LEASE_DRIFT, LeaseHolder, LeaseVoter, type LeaseGroup, type LeaseReply, type LeaseRequest } from '../../ram-replication/index.ts'

export function prng (seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s >>>= 0
    s ^= s >>> 17
    s ^= s << 5; s >>>= 0
    return s / 0x100000000
  }
}

interface SimNode {
  id: string
  rate: number
  voter: LeaseVoter
  holder?: LeaseHolder
  down: boolean
  busy: boolean
}

export interface LeaseWorldReport {
  /** Real-time instants at which two nodes held a lease at once (must stay empty). */
  overlaps: Array<{ at: number, holders: string[] }>
  /** Terms that had a holder, and the number of hand-overs. */
  holders: Map<number, string>
  handovers: number
  /** Real ms a node held the lease in total (liveness, for information). */
  heldMs: number
}

/**
 * Run `durationMs` of simulated time: node 0 takes term 1, then every node renews what it
 * holds every D/4 and asks for the next term when its own voter sees the lease free.
 */
export async function runLeaseWorld (seed: number, options: { nodes: number, durationMs: number, leaseMs: number, faults?: boolean }): Promise<LeaseWorldReport> {
  const random = prng(seed)
  let now = 0
  const group: LeaseGroup = { generation: 1, voters: Array.from({ length: options.nodes }, (_, i) => `n${i}`) }
  const nodes: SimNode[] = group.voters.map(id => {
    // every clock runs within the drift bound of real time (strictly inside it)
    const rate = 1 + (random() * 2 - 1) * LEASE_DRIFT * 0.95
    const node: SimNode = { id, rate, down: false, busy: false, voter: undefined as unknown as LeaseVoter }
    node.voter = new LeaseVoter({ self: id, clock: () => now * rate })
    return node
  })
  const byId = new Map(nodes.map(n => [n.id, n]))
  let cut: Set<string> | undefined
  const queue: Array<{ at: number, run: () => void }> = []
  const schedule = (delay: number, run: () => void): void => { queue.push({ at: now + delay, run }); queue.sort((a, b) => a.at - b.at) }
  const reachable = (a: string, b: string): boolean => cut === undefined || cut.has(a) === cut.has(b)
  const delay = (): number => random() < 0.05 ? 40 + random() * 200 : 0.2 + random() * 6

  const askFrom = (from: SimNode) => async (voter: string, request: LeaseRequest): Promise<LeaseReply | undefined> => {
    if (voter === from.id) return from.voter.handle(request)
    return await new Promise(resolve => {
      schedule(250, () => { resolve(undefined) }) // the ask timeout
      if (random() < 0.05 || !reachable(from.id, voter)) return
      schedule(delay(), () => {
        const target = byId.get(voter)!
        if (target.down || !reachable(from.id, voter)) return
        const reply = target.voter.handle(request)
        if (random() < 0.05) return
        schedule(delay(), () => { if (!from.down && reachable(from.id, voter)) resolve(reply) })
      })
    })
  }

  const holders = new Map<number, string>()
  const overlaps: LeaseWorldReport['overlaps'] = []
  let handovers = 0
  let heldMs = 0
  let last = 0
  const check = (): void => {
    const holding = nodes.filter(n => !n.down && n.holder?.holds() === true)
    if (holding.length > 0) heldMs += now - last
    last = now
    if (holding.length > 1) overlaps.push({ at: now, holders: holding.map(n => n.id) })
    for (const n of holding) {
      const seen = holders.get(n.holder!.term)
      if (seen !== undefined && seen !== n.id) overlaps.push({ at: now, holders: [seen, n.id] })
      if (seen === undefined) { holders.set(n.holder!.term, n.id); handovers++ }
    }
  }

  const act = async (node: SimNode): Promise<void> => {
    if (node.down || node.busy) return
    node.busy = true
    try {
      if (node.holder?.holds() === true || (node.holder !== undefined && node.holder.term > 0 && node.holder.supersededBy === undefined && node.voter.view('vm')?.holder === node.id)) {
        await node.holder.renew(0)
        return
      }
      const view = node.voter.view('vm')
      if (view === undefined) {
        if (node.id !== 'n0') return
        node.holder = new LeaseHolder({ vmId: 'vm', self: node.id, ask: askFrom(node), durationMs: options.leaseMs, clock: () => now * node.rate })
        await node.holder.acquire(1, group, 0)
        return
      }
      if (view.remainingMs > 0) return
      const holder = new LeaseHolder({ vmId: 'vm', self: node.id, ask: askFrom(node), durationMs: options.leaseMs, clock: () => now * node.rate })
      const round = await holder.acquire(view.term + 1, group, 0)
      if (round.granted) node.holder = holder
    } finally {
      node.busy = false
    }
  }

  // each node wakes every D/4 (with jitter); faults come and go
  for (const node of nodes) {
    const tick = (): void => { void act(node); schedule(options.leaseMs / 4 * (0.9 + random() * 0.2), tick) }
    schedule(random() * 10, tick)
  }
  const fault = (): void => {
    const roll = random()
    if (roll < 0.3) {
      const victim = nodes[Math.floor(random() * nodes.length)]
      victim.down = true
      schedule(200 + random() * 2000, () => { victim.down = false; victim.busy = false })
    } else if (roll < 0.6) {
      cut = new Set(nodes.filter(() => random() < 0.5).map(n => n.id))
      schedule(200 + random() * 2000, () => { cut = undefined })
    }
    schedule(500 + random() * 1500, fault)
  }
  if (options.faults !== false) schedule(300, fault)

  while (queue.length > 0 && now <= options.durationMs) {
    const event = queue.shift()!
    now = event.at
    event.run()
    // let the promise chains the event resolved run before the next instant
    for (let i = 0; i < 20; i++) await Promise.resolve()
    check()
  }
  return { overlaps, holders, handovers, heldMs }
}
