// What the spores say about applications, read the same way on every node: the plans in
// force, the instances nodes report, the nodes that hold a bundle. A plan is in force once a
// primary epoch certifies it; a network that certifies no epochs (fewer sclerotia than a
// committee needs) runs the plans of its latent spore, which only the root or its operators can
// sign, and says so (`certified: false`).
import type { Spores, SignedEntry, NodeValue } from '../../spores/index.ts'
import type { PlanValue, ServiceValue, BundleValue } from '../../spores/entry/types.ts'
import { credibleSightings, type InstanceSighting, type PlacementNode, type PlacementPlan } from '../../workloads/placement/index.ts'

export const ENDPOINT_PREFIX = 'app.'

export interface PlanRecord extends PlanValue {
  name: string
  origin: string
  seq: number
  issuedAt: number
  expiresAt?: number
  certified: boolean
}

export interface Sighting extends InstanceSighting {
  exit?: number
  issuedAt: number
}

function live (e: { expiresAt?: number }, now: number): boolean {
  return e.expiresAt === undefined || e.expiresAt > now
}

function planOf (e: SignedEntry, certified: boolean): PlanRecord {
  const v = e.value as PlanValue
  return { ...v, name: e.key, origin: e.origin, seq: e.seq, issuedAt: e.issuedAt, ...(e.expiresAt === undefined ? {} : { expiresAt: e.expiresAt }), certified }
}

export class AppDirectory {
  private readonly spores: Spores

  constructor (spores: Spores) {
    this.spores = spores
  }

  /** True once the network certifies primary epochs beyond the root-signed genesis. */
  certifying (): boolean {
    return (this.spores.primary.latest()?.header.epoch ?? 0) > 0
  }

  /** The plans in force, by application name (removed ones included: min = max = 0). */
  async plans (now = Date.now()): Promise<Map<string, PlanRecord>> {
    const certifying = this.certifying()
    const out = new Map<string, PlanRecord>()
    for await (const e of this.spores.tiers[certifying ? 'primary' : 'latent'].entries('plan')) {
      if (live(e, now)) out.set(e.key, planOf(e, certifying))
    }
    return out
  }

  /** Plans signed but not yet in force (waiting for the next certified epoch). */
  async pending (now = Date.now()): Promise<Map<string, PlanRecord>> {
    const out = new Map<string, PlanRecord>()
    if (!this.certifying()) return out
    const inForce = await this.plans(now)
    for await (const e of this.spores.tiers.latent.entries('plan')) {
      const held = inForce.get(e.key)
      if (live(e, now) && (held === undefined || e.seq > held.seq)) out.set(e.key, planOf(e, false))
    }
    return out
  }

  /** Instances of `name` as their nodes report them (placement's credibleSightings says which to believe). */
  async reported (name: string, now = Date.now()): Promise<Sighting[]> {
    const out: Sighting[] = []
    for await (const e of this.spores.tiers.latent.entries('service')) {
      const v = e.value as ServiceValue
      if (v.name !== ENDPOINT_PREFIX + name || !live(e, now)) continue
      if (v.digest === undefined || v.health === undefined || (v.endpoints.length === 0 && v.health !== 'done')) continue
      out.push({ peerId: e.origin, digest: v.digest, health: v.health, issuedAt: e.issuedAt, ...(v.exit === undefined ? {} : { exit: v.exit }) })
    }
    return out
  }

  /** Members that say they hold bundle `digest`. */
  async holders (digest: string, now = Date.now()): Promise<string[]> {
    const out: string[] = []
    for await (const e of this.spores.tiers.latent.entries('bundle')) {
      if ((e.value as BundleValue).digest === digest && live(e, now)) out.push(e.origin)
    }
    return out
  }

  /** The nodes in `liveNodes` as placement sees them (role from the caller, hardware from node entries). */
  async nodes (liveNodes: ReadonlyMap<string, string | undefined>): Promise<PlacementNode[]> {
    const out: PlacementNode[] = []
    for (const [peerId, role] of liveNodes) {
      const e = this.spores.tiers.latent.getById(`node/${peerId}`) === undefined ? undefined : await this.spores.tiers.latent.readById(`node/${peerId}`)
      const value = e?.type === 'node' ? e.value as NodeValue : undefined
      const hw = value?.hardware ?? {}
      out.push({ peerId, role: role ?? value?.role ?? 'unknown', arch: typeof hw.arch === 'string' ? hw.arch : 'unknown', ...(typeof hw.memoryMiB === 'number' ? { memoryMiB: hw.memoryMiB } : {}), ...(value?.labels === undefined ? {} : { labels: value.labels }) })
    }
    return out
  }

  /**
   * What placement believes of `name`'s instances: running ones on live nodes ranked among the
   * first max hosts, and job results of any node that fits (see credibleSightings).
   */
  async sightings (plan: PlacementPlan, liveNodes: readonly PlacementNode[], now = Date.now()): Promise<Sighting[]> {
    const reported = await this.reported(plan.name, now)
    const known = await this.nodes(new Map(reported.map(s => [s.peerId, liveNodes.find(n => n.peerId === s.peerId)?.role])))
    const believed = new Set(credibleSightings(plan, liveNodes, reported, known))
    return reported.filter(s => believed.has(s))
  }
}
