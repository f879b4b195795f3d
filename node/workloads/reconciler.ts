// The loop that makes this node do its share of every plan: every few seconds (and when a plan,
// an instance or a peer changes) it reads the plans in force, the live nodes and the instances
// they report, asks placement what this node should do, and starts, replaces or stops its own
// instances. It also keeps a copy of each planned bundle on the two best-ranked always-on nodes,
// so a bundle outlives the node it was published on.
import { decide, hostsOf, rankHosts, rollout, rolloutAction, type PlacementPlan } from '../../workloads/placement/index.ts'
import type { SignedBundle } from '../../workloads/bundle/index.ts'
import type { Logger } from '../log/index.ts'
import type { AppDirectory, PlanRecord } from './app-directory.ts'
import type { LocalInstances } from './local-instances.ts'
import type { BundleExchange } from './bundle-exchange.ts'
import type { BundleStore } from './bundle-store.ts'

const KEEPERS = 2
const RETRY_AFTER_MS = 5_000
const ROLLOUT_SETTLE_MS = 4_000

export interface ReconcilerOptions {
  self: string
  directory: AppDirectory
  /** live members by peer id → role, this node included */
  liveNodes: () => Map<string, string>
  instances: LocalInstances
  exchange: BundleExchange
  store: BundleStore
  /** why this bundle may not run here (signer without authority), or undefined */
  refusal: (bundle: SignedBundle) => string | undefined
  /** tells the network this node holds the bundle */
  holding: (bundle: SignedBundle) => Promise<void>
  /** may this instance start? (max 1: a lease); resolves false to try again later */
  mayStart?: (plan: PlanRecord) => Promise<boolean>
  /** an instance started here (keep its lease) */
  started?: (plan: PlanRecord) => void
  /** an instance stopped here (give its lease up) */
  stopped?: (name: string) => Promise<void>
  log: Logger
}

/** A single-instance plan runs under a lease of the voters it names (app-lease.ts). */
export function isLeased (plan: PlanRecord): boolean {
  return plan.max === 1 && plan.voters !== undefined && plan.voters.length > 0
}

export function placementPlan (plan: PlanRecord): PlacementPlan {
  return { name: plan.name, digest: plan.digest, min: plan.min, max: plan.max, kind: plan.kind ?? 'service', ...(plan.roles === undefined ? {} : { roles: plan.roles }), ...(plan.arch === undefined ? {} : { arch: plan.arch }), ...(plan.memoryMb === undefined ? {} : { memoryMb: plan.memoryMb }), ...(plan.labels === undefined ? {} : { labels: plan.labels as Record<string, string> }), ...(plan.from === undefined ? {} : { from: plan.from }) }
}

export class Reconciler {
  private readonly o: ReconcilerOptions
  private readonly failures = new Map<string, { at: number, reason: string }>()
  private readonly fetching = new Set<string>()
  /** since when a rollout has asked to stop or replace an instance here, by application */
  private readonly goingSince = new Map<string, { action: string, at: number }>()
  private busy: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor (options: ReconcilerOptions) {
    this.o = options
  }

  start (intervalMs: number): void {
    this.timer = setInterval(() => { this.poke() }, intervalMs)
    this.timer.unref()
    this.poke()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    await this.busy
  }

  /** Runs a pass soon; passes never overlap. */
  poke (): void {
    this.busy = this.busy.then(async () => {
      if (this.stopped) return
      try {
        await this.pass()
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message }, 'workloads: reconcile pass failed')
      }
    })
  }

  /** Why the last start of `name` here failed, while it waits to retry. */
  failure (name: string): { at: number, reason: string } | undefined {
    return this.failures.get(name)
  }

  private async pass (): Promise<void> {
    const { directory, instances } = this.o
    const plans = await directory.plans()
    const liveNodes = this.o.liveNodes()
    const nodes = await directory.nodes(liveNodes)
    for (const name of instances.names()) {
      if (!plans.has(name)) await this.stopInstance(name, 'its plan is gone')
    }
    for (const plan of plans.values()) {
      if (this.stopped) return
      const p = placementPlan(plan)
      const sightings = await directory.sightings(p, nodes)
      this.keep(p, nodes)
      const runningDigest = instances.digestOf(plan.name)
      const hosts = hostsOf(p, nodes, sightings)
      // this node's own instance as it is now, not as its last record said
      const mine = runningDigest === undefined ? undefined : { peerId: this.o.self, digest: runningDigest, health: instances.health(plan.name) ?? 'starting' }
      // a rolling upgrade of a service that may run two instances (rollout.ts); a single one is replaced in place
      const upgrade = isLeased(plan) ? undefined : rollout(p, nodes, [...sightings.filter(s => s.peerId !== this.o.self), ...(mine === undefined ? [] : [mine])])
      if (upgrade === undefined && hosts.includes(this.o.self) && runningDigest !== undefined && runningDigest !== plan.digest && p.kind === 'service') {
        await this.startInstance(plan, 'the plan names a new bundle')
        continue
      }
      if (runningDigest !== undefined && isLeased(plan) && !hosts.includes(this.o.self)) {
        // the lease allows one holder: a better host can start only once this one has let go
        await this.stopInstance(plan.name, 'a better-ranked host is live; handing the single instance over')
        continue
      }
      const { action, reason } = upgrade === undefined
        ? decide(p, nodes, this.o.self, sightings, runningDigest !== undefined)
        : rolloutAction(upgrade, this.o.self, mine, p.digest)
      // an old instance of a rollout serves on until the gateways have seen what replaces it
      const goes = upgrade !== undefined && (action === 'stop' || action === 'replace')
      if (!goes) this.goingSince.delete(plan.name)
      else if (!this.settled(plan.name, action)) continue
      if (action === 'start' || action === 'replace') await this.startInstance(plan, reason)
      else if (action === 'stop') await this.stopInstance(plan.name, reason)
    }
  }

  /**
   * True once a rollout has asked this node to stop (or replace) its old instance for
   * ROLLOUT_SETTLE_MS on end: the records of the new instances that make it safe have reached
   * the other nodes and their gateways' views (refreshed every 2 s) meanwhile. Only delays.
   */
  private settled (name: string, action: string): boolean {
    const asked = this.goingSince.get(name)
    if (asked === undefined || asked.action !== action) {
      this.goingSince.set(name, { action, at: Date.now() })
      return false
    }
    if (Date.now() - asked.at < ROLLOUT_SETTLE_MS) return false
    this.goingSince.delete(name)
    return true
  }

  private async stopInstance (name: string, reason: string): Promise<void> {
    this.o.log.info({ app: name, reason }, 'stopping the instance')
    await this.o.instances.stop(name)
    await this.o.stopped?.(name)
  }

  private async startInstance (plan: PlanRecord, reason: string): Promise<void> {
    const failed = this.failures.get(plan.name)
    if (failed !== undefined && Date.now() - failed.at < RETRY_AFTER_MS) return
    try {
      const bundle = await this.bundle(plan.digest)
      if (bundle.manifest.name !== plan.name) throw new Error(`bundle ${plan.digest.slice(0, 12)} is application ${bundle.manifest.name}, not ${plan.name}`)
      // the lease last, right before the start: fetching a bundle may take longer than a lease lasts
      if (this.o.mayStart !== undefined && !await this.o.mayStart(plan)) return
      this.o.log.info({ app: plan.name, digest: plan.digest, reason }, 'starting an instance')
      await this.o.instances.start(plan.name, bundle)
      this.o.started?.(plan)
      this.failures.delete(plan.name)
    } catch (err) {
      await this.o.stopped?.(plan.name)
      this.failures.set(plan.name, { at: Date.now(), reason: (err as Error).message })
      this.o.log.warn({ app: plan.name, err: (err as Error).message }, 'could not start an instance; trying again')
    }
  }

  private async bundle (digest: string): Promise<SignedBundle> {
    const held = this.o.store.open(digest)
    const bundle = held ?? (await this.fetch(digest))
    const refusal = this.o.refusal(bundle)
    if (refusal !== undefined) throw new Error(refusal)
    return bundle
  }

  private async fetch (digest: string): Promise<SignedBundle> {
    const holders = (await this.o.directory.holders(digest)).filter(h => h !== this.o.self)
    await this.o.exchange.fetch(digest, holders)
    const bundle = this.o.store.open(digest)!
    await this.o.holding(bundle)
    return bundle
  }

  /** The best-ranked always-on nodes keep a copy of every planned bundle. */
  private keep (plan: PlacementPlan, nodes: Parameters<typeof rankHosts>[1]): void {
    if (plan.max === 0 || this.o.store.has(plan.digest) || this.fetching.has(plan.digest)) return
    const keepers = rankHosts({ name: 'keep', digest: plan.digest, min: KEEPERS, max: KEEPERS, kind: 'job', roles: ['sclerotium', 'rhizomorph'] }, nodes).slice(0, KEEPERS).map(n => n.peerId)
    if (!keepers.includes(this.o.self)) return
    this.fetching.add(plan.digest)
    void this.bundle(plan.digest)
      .catch((err: Error) => { this.o.log.debug({ digest: plan.digest, err: err.message }, 'could not keep a copy of a planned bundle yet') })
      .finally(() => this.fetching.delete(plan.digest))
  }
}
