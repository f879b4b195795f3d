// Which nodes run an application's instances. Every node computes the same answer from the
// same certified plan and the same node entries, so two nodes never both take the last slot:
// candidates that fit (role, architecture, memory) are ranked by rendezvous hashing of
// (application, bundle digest, peer id) and the first `min` are the hosts. Rendezvous hashing
// moves only the instances of a node that leaves or joins, and spreads applications over hosts.
import { sha256, toHex } from '../../crypto/index.ts'

export type Arch = 'x86_64' | 'aarch64'
export const DEFAULT_ROLES: readonly string[] = ['sclerotium', 'rhizomorph']

export interface PlacementPlan {
  name: string
  digest: string
  min: number
  max: number
  kind: 'service' | 'job'
  /** roles that may run it (default sclerotium and rhizomorph: hyphae are clients) */
  roles?: readonly string[]
  /** architectures the bundle has something for (default any) */
  arch?: readonly string[]
  memoryMb?: number
  /** labels a node must carry, each with this value */
  labels?: Readonly<Record<string, string>>
  /** the bundles a rolling upgrade replaces (earlier plans of the name named them) */
  from?: readonly string[]
}

export interface PlacementNode {
  peerId: string
  role: string
  /** as the node reports it (Node's os.arch(): x64, arm64, …) */
  arch: string
  /** the machine's memory */
  memoryMiB?: number
  labels?: Readonly<Record<string, string | number | boolean>>
}

/** What an application's instances report of themselves (their endpoint records). */
export interface InstanceSighting {
  peerId: string
  digest: string
  health: 'starting' | 'healthy' | 'unhealthy' | 'done'
}

export function normalizeArch (arch: string): Arch | undefined {
  if (arch === 'x64' || arch === 'x86_64') return 'x86_64'
  if (arch === 'arm64' || arch === 'aarch64') return 'aarch64'
  return undefined
}

/** Why `node` cannot run instances of `plan`, or undefined when it can. */
export function unfitReason (plan: PlacementPlan, node: PlacementNode): string | undefined {
  const roles = plan.roles ?? DEFAULT_ROLES
  if (!roles.includes(node.role)) return `it is a ${node.role} (the plan wants ${roles.join(' or ')})`
  const arch = normalizeArch(node.arch)
  if (plan.kind === 'service' && plan.arch !== undefined && plan.arch.length > 0 && (arch === undefined || !plan.arch.includes(arch))) return `it is ${node.arch} (the bundle runs on ${plan.arch.join(', ')})`
  // total memory, not free memory: free memory moves as instances start, and the ranking must not
  if (plan.memoryMb !== undefined && node.memoryMiB !== undefined && node.memoryMiB < plan.memoryMb) return `it has ${node.memoryMiB} MiB of memory (an instance needs ${plan.memoryMb})`
  for (const [key, value] of Object.entries(plan.labels ?? {})) {
    if (node.labels?.[key] !== value) return `it does not carry the label ${key}=${value}`
  }
  return undefined
}

function score (plan: PlacementPlan, peerId: string): string {
  return toHex(sha256(new TextEncoder().encode(`${plan.name}\n${plan.digest}\n${peerId}`)))
}

/** The nodes that fit, best first; ties cannot happen (distinct peer ids hash apart). */
export function rankHosts (plan: PlacementPlan, nodes: readonly PlacementNode[]): PlacementNode[] {
  return nodes
    .filter(node => unfitReason(plan, node) === undefined)
    .map(node => ({ node, score: score(plan, node.peerId) }))
    .sort((a, b) => a.score < b.score ? -1 : a.score > b.score ? 1 : 0)
    .map(x => x.node)
}

/**
 * The sightings worth believing. A member can report only its own instances (records are
 * signed), but a Byzantine member could report an instance it does not run, to draw the
 * gateway's traffic or to make a job look done. Only a node that fits the plan and ranks among
 * the first `max` hosts can hold a running instance worth routing to; a job's result
 * counts from any node that fits it, live or not (the job must not run again when the node that
 * ran it leaves). One rank more than max is believed too: during a handover the instance that
 * still runs (a single instance keeps its lease until the new host takes it) may rank just
 * below the hosts. During a rolling upgrade an instance of a bundle the plan rolls from is
 * believed by the same rule under that bundle's own ranking (where it was placed).
 */
export function credibleSightings (plan: PlacementPlan, liveNodes: readonly PlacementNode[], sightings: readonly InstanceSighting[], knownNodes: readonly PlacementNode[]): InstanceSighting[] {
  const first = (digest: string): Set<string> => new Set(rankHosts({ ...plan, digest }, liveNodes).slice(0, Math.max(plan.max, plan.min, 1) + 1).map(n => n.peerId))
  const eligible = first(plan.digest)
  const formerly = new Map((plan.from ?? []).filter(d => d !== plan.digest).map(d => [d, first(d)]))
  const fits = new Set(knownNodes.filter(n => unfitReason(plan, n) === undefined).map(n => n.peerId))
  return sightings.filter(s => s.health === 'done' ? fits.has(s.peerId) : eligible.has(s.peerId) || formerly.get(s.digest)?.has(s.peerId) === true)
}

/** How many instances the plan wants now: min for a service, one for a job not done yet. */
export function wanted (plan: PlacementPlan, sightings: readonly InstanceSighting[]): number {
  if (plan.max === 0) return 0
  if (plan.kind === 'job') return sightings.some(s => s.digest === plan.digest && s.health === 'done') ? 0 : Math.min(1, Math.max(plan.min, 1))
  return plan.min
}

/** The peers that should run instances now. */
export function hostsOf (plan: PlacementPlan, nodes: readonly PlacementNode[], sightings: readonly InstanceSighting[]): string[] {
  return rankHosts(plan, nodes).slice(0, wanted(plan, sightings)).map(n => n.peerId)
}

export type PlacementAction = 'start' | 'stop' | 'keep' | 'none'

/**
 * What `self` does about `plan`, given the live nodes and the instances others report. A host
 * starts; an instance on a node that is no host any more (a better-ranked node came back, the
 * plan shrank) keeps running until the hosts report `min` healthy instances of the planned
 * bundle, so a move never leaves a gap, then stops. Anything over max stops at once.
 */
export function decide (plan: PlacementPlan, nodes: readonly PlacementNode[], self: string, sightings: readonly InstanceSighting[], selfRunning: boolean): { action: PlacementAction, reason: string } {
  const hosts = hostsOf(plan, nodes, sightings)
  if (hosts.includes(self)) return selfRunning ? { action: 'keep', reason: 'a host of this plan' } : { action: 'start', reason: 'a host of this plan' }
  if (!selfRunning) return { action: 'none', reason: hosts.length === 0 ? 'the plan wants no instance now' : 'not a host of this plan' }
  if (plan.kind === 'job') return { action: 'keep', reason: 'a job runs to completion' }
  const others = sightings.filter(s => s.peerId !== self && s.health !== 'done')
  if (others.length + 1 > plan.max) return { action: 'stop', reason: `more than max ${plan.max} instances run` }
  const ready = others.filter(s => hosts.includes(s.peerId) && s.digest === plan.digest && s.health === 'healthy').length
  if (ready >= hosts.length) return { action: 'stop', reason: 'the hosts of this plan run healthy instances' }
  return { action: 'keep', reason: `handing over: ${ready} of ${hosts.length} host(s) healthy` }
}
