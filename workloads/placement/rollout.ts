// A rolling upgrade: the plan names a new bundle while instances of the bundles it rolls from
// (`plan.from`) still run. Every node computes the same rollout from the same plan, live nodes
// and sightings, and acts only on its own line of it, so the instances that serve never fall
// below min and no two nodes both stop the last old instance:
// - one step at a time: the next host (hosts that run nothing first, then hosts that run an old
//   instance, each in rank order) starts the new bundle, and nothing else starts until that
//   instance is healthy. A new instance that never becomes healthy halts the rollout there, and
//   the old instances go on serving.
// - an old instance stops only when the instances that serve without it suffice: the healthy
//   new ones plus the healthy old ones *after* it in one fixed stop order (old instances on
//   nodes that are no host, then those on hosts in start order). A node counts only instances
//   later in the order, so whichever of several nodes stop at once, the last of them leaves
//   min serving. A start waits while more than max instances run, so at most max + 1 do.
// - a host that runs an old instance replaces it in place once that rule lets it stop. When it
//   does not (every fitting node is busy with an old instance), the next-ranked free node runs
//   one extra new instance (at most max + 1 instances in all); an old instance off the hosts
//   that will stop frees a node for it. With no free node and none to come the host replaces
//   in place anyway, and min - 1 serve until its new instance is healthy.
// Once no old instance runs, the rollout is over and placement's ordinary rules stop the extra.
import { hostsOf, rankHosts, type InstanceSighting, type PlacementNode, type PlacementPlan } from './placement.ts'

export type RolloutStep = 'start' | 'replace' | 'surge'

export interface Rollout {
  /** the hosts of the new bundle, best first */
  hosts: string[]
  /** the nodes running a healthy instance of the new bundle */
  ready: string[]
  /** the nodes running an instance of an older bundle */
  old: InstanceSighting[]
  /** the new instance the rollout waits for (starting, or unhealthy) */
  waitingFor?: InstanceSighting
  /** who does the next step; `short` when it leaves min - 1 serving meanwhile */
  next?: { peerId: string, step: RolloutStep, short: boolean }
  /** may the old instance on `peerId` stop now */
  mayStop: (peerId: string) => boolean
}

function byPeer (a: InstanceSighting, b: InstanceSighting): number {
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0
}

/**
 * The rollout of `plan` given what runs (`sightings`: believed, one per node, this node's own
 * as it is now), or undefined when none is under way: no old instance runs, or the plan is not
 * a service that may run two instances (a single instance is handed over under its lease).
 */
export function rollout (plan: PlacementPlan, nodes: readonly PlacementNode[], sightings: readonly InstanceSighting[]): Rollout | undefined {
  if (plan.kind !== 'service' || plan.min === 0 || plan.max < 2) return undefined
  const running = sightings.filter(s => s.health !== 'done')
  const old = running.filter(s => s.digest !== plan.digest).sort(byPeer)
  if (old.length === 0) return undefined
  const fresh = running.filter(s => s.digest === plan.digest).sort(byPeer)
  const hosts = hostsOf(plan, nodes, sightings)
  const ready = fresh.filter(s => s.health === 'healthy').map(s => s.peerId)
  const oldAt = new Map(old.map(s => [s.peerId, s]))
  const lacking = hosts.filter(h => !fresh.some(s => s.peerId === h))
  const startOrder = [...lacking.filter(h => !oldAt.has(h)), ...lacking.filter(h => oldAt.has(h))]
  const stopOrder = [...old.map(s => s.peerId).filter(p => !hosts.includes(p)), ...startOrder.filter(h => oldAt.has(h))]
  const servingWithout = (peerId: string): number => ready.length + stopOrder.slice(stopOrder.indexOf(peerId) + 1).filter(p => oldAt.get(p)?.health === 'healthy').length
  const mayStop = (peerId: string): boolean => {
    const s = oldAt.get(peerId)
    if (s === undefined || !stopOrder.includes(peerId)) return false
    return s.health !== 'healthy' || servingWithout(peerId) >= plan.min
  }
  const waitingFor = fresh.find(s => s.health !== 'healthy')
  const base = { hosts, ready, old, mayStop, ...(waitingFor === undefined ? {} : { waitingFor }) }
  if (waitingFor !== undefined || startOrder.length === 0) return base
  const first = startOrder[0]
  // a start adds an instance: at most max + 1 run (old ones stop as new ones become healthy)
  const room = running.length <= plan.max
  if (!oldAt.has(first)) return room ? { ...base, next: { peerId: first, step: 'start', short: false } } : base
  if (mayStop(first)) return { ...base, next: { peerId: first, step: 'replace', short: false } }
  const busy = new Set(running.map(s => s.peerId))
  const spare = room ? rankHosts(plan, nodes).find(n => !hosts.includes(n.peerId) && !busy.has(n.peerId)) : undefined
  if (spare !== undefined) return { ...base, next: { peerId: spare.peerId, step: 'surge', short: false } }
  // an old instance off the hosts will stop (it may now, or once more new ones are healthy) and
  // leave its node free for the extra instance: wait for that rather than serve fewer than min
  if (old.some(s => !hosts.includes(s.peerId))) return base
  return { ...base, next: { peerId: first, step: 'replace', short: true } }
}

/**
 * What `self` does during a rollout: start or replace when the next step is its own, stop its
 * old instance when the stop rule lets it, else keep what it runs. `mine` is what runs here.
 */
export function rolloutAction (r: Rollout, self: string, mine: InstanceSighting | undefined, digest: string): { action: 'start' | 'replace' | 'stop' | 'keep' | 'none', reason: string } {
  const next = r.next?.peerId === self ? r.next : undefined
  if (mine === undefined) {
    if (next !== undefined && next.step !== 'replace') return { action: 'start', reason: next.step === 'surge' ? 'rolling upgrade: one extra instance of the new bundle, so min keep serving while a host replaces its old one' : 'rolling upgrade: the next host of the new bundle' }
    return { action: 'none', reason: 'rolling upgrade: not this node\'s step' }
  }
  if (mine.digest === digest) return { action: 'keep', reason: 'rolling upgrade: runs the new bundle' }
  if (next?.step === 'replace') return { action: 'replace', reason: next.short ? 'rolling upgrade: replaced in place (no spare node: min - 1 serve until it is healthy)' : 'rolling upgrade: replaced in place, min serve meanwhile' }
  if (!r.hosts.includes(self) && r.mayStop(self)) return { action: 'stop', reason: 'rolling upgrade: enough instances serve without this old one' }
  return { action: 'keep', reason: 'rolling upgrade: the old instance serves until its turn' }
}
