// The daemon's side of the workloads (endomycetes): the bundles this node holds and serves, the
// plans it signs for the operator, the instances it runs as placement decides, the endpoint
// records it publishes for them, and the gateway every sclerotium serves under /app/NAME/.
import { readFileSync, statSync } from 'node:fs'
import { arch as osArch } from 'node:os'
import { resolve } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ApiError, type Routes } from '../api/index.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import { publishEntry, EntryNotStoredError, type SporesFeature } from '../spores/index.ts'
import { signerOf, SchemaError, type Spores, type SporesNetwork, type EntryType, type SignedEntry } from '../../spores/index.ts'
import { APP_NAME, BUNDLE_DIGEST } from '../../spores/entry/types.ts'
import { getPublicKey, peerIdOfPublicKey } from '../../crypto/index.ts'
import { operatorGrantAdmits, decodeOperatorGrant, signOperatorGrant, encodeOperatorGrant } from '../../membership/index.ts'
import { openBundle, MAX_BUNDLE_BYTES, InvalidBundleError, type SignedBundle } from '../../workloads/bundle/index.ts'
import { normalizeArch, hostsOf, unfitReason, rollout, DEFAULT_ROLES, type InstanceSighting, type PlacementNode } from '../../workloads/placement/index.ts'
import { readLog } from '../../workloads/runner/index.ts'
import { BundleStore } from './bundle-store.ts'
import { BundleExchange } from './bundle-exchange.ts'
import { BundleCollector } from './bundle-collector.ts'
import { InstanceDirCollector } from './instance-dir-collector.ts'
import { workloadsSettingsFromEnv, type WorkloadsSettings } from './workloads-settings.ts'
import { AppGateway, gatewayProtocol } from './app-gateway.ts'
import { AppDirectory, ENDPOINT_PREFIX, type PlanRecord } from './app-directory.ts'
import { LocalInstances } from './local-instances.ts'
import { Reconciler, placementPlan, isLeased } from './reconciler.ts'
import { RolloutWatch, type RolloutStatus } from './rollout-status.ts'
import { AppLeases } from './app-lease.ts'
import { loadOperatorGrant } from './operator-grant-file.ts'
import { LogExchange, MAX_LOG_TAIL_BYTES } from './log-exchange.ts'
import { LogFollowService } from './log-follow-service.ts'
import { logFollowProtocol } from './log-follow-messages.ts'
import { openRemoteLogFollow, LogFollowRefusedError, type FollowEvent } from './remote-log-follow.ts'
import { followLines, type RunningInstance } from './log-follow-lines.ts'
import { localLogOutput } from './local-log-output.ts'

const RECONCILE_MS = 2_000
const ENDPOINT_TTL_MS = 30_000
const ENDPOINT_REFRESH_MS = 10_000
/** a withdrawn holder record stays this long, enough to spread, then expires everywhere */
const WITHDRAWN_TTL_MS = 5_000

export interface WorkloadsFeature extends DaemonFeature {
  /** Answers an HTTP request under /app/ (the browser client's server calls it). */
  gateway: (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>
}

function record (b: unknown): Record<string, unknown> {
  return b !== null && typeof b === 'object' && !Array.isArray(b) ? b as Record<string, unknown> : {}
}

function appName (raw: unknown): string {
  if (typeof raw !== 'string' || !APP_NAME.test(raw)) throw new ApiError(400, `application name "${String(raw).slice(0, 60)}" must be 1-48 lowercase letters, digits or '-', starting with a letter or digit`)
  return raw
}

const PEER_SUFFIX = /^[1-9A-HJ-NP-Za-km-z]{8,128}$/

/** The query of the log routes: which application, which stream, how much of the past, on which node (a peer id or its last 8 or more characters). */
function logQuery (query: URLSearchParams): { name: string, stream: 'stdout' | 'stderr', tail: number, node?: string } {
  const name = appName(query.get('name'))
  const stream = query.get('stream') ?? 'stdout'
  if (stream !== 'stdout' && stream !== 'stderr') throw new ApiError(400, 'stream must be stdout or stderr')
  const tail = Number(query.get('tail') ?? 64 * 1024)
  if (!Number.isInteger(tail) || tail < 0 || tail > MAX_LOG_TAIL_BYTES) throw new ApiError(400, `tail must be a byte count up to ${MAX_LOG_TAIL_BYTES}`)
  const node = query.get('node') ?? undefined
  if (node !== undefined && !PEER_SUFFIX.test(node)) throw new ApiError(400, 'node must be a peer id, or its last 8 or more characters')
  return { name, stream, tail, ...(node === undefined ? {} : { node }) }
}

/** A manifest's labels as a plan carries them: within what a node can carry, or no node ever fits. */
function nodeLabels (labels: Record<string, string>): Record<string, string> {
  const entries = Object.entries(labels)
  if (entries.length > 16) throw new ApiError(400, 'the manifest asks for more than 16 labels; a node carries at most 16')
  for (const [key, value] of entries) {
    if (key.length > 32 || value.length > 64) throw new ApiError(400, `label ${key.slice(0, 40)}: a node label has a key of at most 32 and a value of at most 64 characters, so no node could fit`)
  }
  return labels
}

function count (raw: unknown, what: string, fallback?: number): number {
  if (raw === undefined && fallback !== undefined) return fallback
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0 || raw > 1024) throw new ApiError(400, `${what} must be a whole number from 0 to 1024`)
  return raw
}

export function workloadsFeature (options: { spores: SporesFeature }): WorkloadsFeature {
  let ctx: DaemonContext | undefined
  let store: BundleStore | undefined
  let exchange: BundleExchange | undefined
  let gateway: AppGateway | undefined
  let directory: AppDirectory | undefined
  let instances: LocalInstances | undefined
  let reconciler: Reconciler | undefined
  let leases: AppLeases | undefined
  let logs: LogExchange | undefined
  let follows: LogFollowService | undefined
  let refresh: NodeJS.Timeout | undefined
  let viewTimer: NodeJS.Timeout | undefined
  let collector: BundleCollector | undefined
  let dirCollector: InstanceDirCollector | undefined
  let settings: WorkloadsSettings | undefined
  let collectTimer: NodeJS.Timeout | undefined
  const arch = normalizeArch(osArch())
  // the gateway answers from a view refreshed in the background, never reading the database per request
  let plansSeen = new Set<string>()
  let endpointTable = new Map<string, string[]>()
  /** the bundle each local instance last ran, for the record that says it stopped */
  const lastDigest = new Map<string, string>()
  /** the rolling upgrades under way, by application */
  const rollouts = new Map<string, RolloutWatch>()
  /** the job results already published, by application */
  const doneSaid = new Map<string, string>()

  const running = (): { ctx: DaemonContext, spores: Spores, network: SporesNetwork, store: BundleStore, directory: AppDirectory, instances: LocalInstances } => {
    const spores = options.spores.spores()
    const network = options.spores.network()
    if (ctx === undefined || spores === undefined || network === undefined || store === undefined || directory === undefined || instances === undefined) throw new ApiError(503, 'the workloads are not running yet; try again in a moment')
    return { ctx, spores, network, store, directory, instances }
  }

  const rootPeerId = (c: DaemonContext): string => peerIdOfPublicKey(c.network.rootPublicKey)

  /** Why a bundle's signer may not publish in this network, or undefined. */
  const refusal = (bundle: SignedBundle): string | undefined => {
    const c = ctx!
    if (bundle.signer === rootPeerId(c)) return undefined
    if (bundle.grant !== undefined && operatorGrantAdmits(bundle.grant, { rootPublicKey: c.network.rootPublicKey, operator: bundle.signer, at: bundle.signedAt })) return undefined
    return `bundle ${bundle.digest.slice(0, 12)} is signed by ${bundle.signer}, which is neither this network's root key nor an operator it granted`
  }

  /** Signs and spreads an entry of this node (or of the root key, for plans). */
  const publish = async (signer: { secretKey: Uint8Array, peerId: string }, fields: { type: EntryType, key: string, value: unknown, expiresAt?: number }): Promise<SignedEntry> => {
    const { spores, network } = running()
    try {
      return await publishEntry(spores, network, signer, fields)
    } catch (err) {
      if (err instanceof EntryNotStoredError) throw new ApiError(409, err.message)
      throw err
    }
  }

  const self = (): { secretKey: Uint8Array, peerId: string } => signerOf(ctx!.secretKey)

  const announceHolding = async (bundle: SignedBundle): Promise<void> => {
    const me = self()
    const key = `${me.peerId}/${bundle.digest}`
    const said = running().spores.tiers.latent.get('bundle', key)
    // said and not withdrawn (a withdrawn record expires): nothing to add
    if (said !== undefined && (said.expiresAt === undefined || said.expiresAt > Date.now() + WITHDRAWN_TTL_MS)) return
    await publish(me, { type: 'bundle', key, value: { digest: bundle.digest, name: bundle.manifest.name, size: store!.size(bundle.digest) ?? 0 } })
  }

  /** What this node needs of the bundles it holds: each digest a plan or an instance here names, and why. */
  const wantedBundles = async (): Promise<Map<string, string>> => {
    const { directory: d, instances: inst } = running()
    const wanted = new Map<string, string>()
    for (const p of (await d.plans()).values()) if (p.max > 0) wanted.set(p.digest, `plan ${p.name}`)
    for (const p of (await d.pending()).values()) if (p.max > 0 && !wanted.has(p.digest)) wanted.set(p.digest, `plan ${p.name} (not certified yet)`)
    for (const name of inst.names()) {
      const digest = inst.digestOf(name)
      if (digest !== undefined && !wanted.has(digest)) wanted.set(digest, `instance ${name} runs it here`)
    }
    return wanted
  }

  /** Deletes the bundles nothing needs (bundle-collector.ts) and withdraws this node's holder record of each; then the directories of instances that stopped (instance-dir-collector.ts). */
  const collectBundles = async (): Promise<void> => {
    if (collector === undefined) return
    try {
      if (instances !== undefined) dirCollector?.collect(instances.dirUse())
    } catch (err) {
      ctx?.log.warn({ err: (err as Error).message }, 'workloads: instance directory collection failed')
    }
    try {
      const { removed } = collector.collect(await wantedBundles())
      for (const gone of removed) {
        const key = `${self().peerId}/${gone.digest}`
        const said = await running().spores.tiers.latent.read('bundle', key)
        if (said === undefined) continue
        await publish(self(), { type: 'bundle', key, value: said.value, expiresAt: Date.now() + WITHDRAWN_TTL_MS })
          .catch((err: Error) => { ctx?.log.debug({ digest: gone.digest, err: err.message }, 'holder record not withdrawn') })
      }
    } catch (err) {
      ctx?.log.warn({ err: (err as Error).message }, 'workloads: bundle collection failed')
    }
  }

  /** The endpoint record of this node's instance of `name` (or its absence). */
  const publishEndpoint = async (name: string): Promise<void> => {
    if (instances === undefined || ctx === undefined) return
    const health = instances.health(name)
    const current = instances.digestOf(name)
    if (current !== undefined) lastDigest.set(name, current)
    const digest = lastDigest.get(name)
    if (digest === undefined) return
    // a job's result is published once: it does not expire, and a new version would only churn the epochs
    if (health === 'done' && doneSaid.get(name) === digest) return
    const view = instances.view(name)
    const key = `${self().peerId}/${ENDPOINT_PREFIX}${name}`
    const value = health === undefined || view === undefined
      ? { name: ENDPOINT_PREFIX + name, endpoints: [], protocol: gatewayProtocol(ctx.network.networkId), health: 'unhealthy', digest }
      : { name: ENDPOINT_PREFIX + name, endpoints: health === 'done' ? [] : [`/p2p/${self().peerId}`], protocol: gatewayProtocol(ctx.network.networkId), digest: view.digest, health, ...(view.job === undefined ? {} : { exit: Math.min(255, Math.max(0, view.job.exitCode)) }) }
    // a finished job's record stays (the job must not run again); a live instance's expires unless refreshed
    const expiresAt = health === 'done' ? undefined : Date.now() + ENDPOINT_TTL_MS
    await publish(self(), { type: 'service', key, value, ...(expiresAt === undefined ? {} : { expiresAt }) })
      .then(() => { if (health === 'done') doneSaid.set(name, digest) })
      .catch((err: Error) => { ctx?.log.debug({ app: name, err: err.message }, 'endpoint record not published') })
  }

  /** Live members (connected and verified) and this node, with their roles. */
  const liveNodes = (): Map<string, string> => {
    const c = ctx!
    const out = new Map<string, string>([[self().peerId, c.role()]])
    for (const p of c.peers()) if (c.isVerified(p.peerId)) out.set(p.peerId, p.role)
    return out
  }

  /** The rolling upgrade of `p` under way, if any, with this node's own instance as it is now, and what status says of it. */
  const rolloutOf = (p: PlanRecord, nodes: PlacementNode[], sightings: InstanceSighting[]): RolloutStatus | undefined => {
    const me = self().peerId
    const digestHere = instances?.digestOf(p.name)
    const mine = digestHere === undefined ? [] : [{ peerId: me, digest: digestHere, health: instances?.health(p.name) ?? 'starting' }]
    const r = isLeased(p) ? undefined : rollout(placementPlan(p), nodes, [...sightings.filter(s => s.peerId !== me), ...mine])
    if (r === undefined) { rollouts.delete(p.name); return undefined }
    const watch = rollouts.get(p.name) ?? new RolloutWatch()
    rollouts.set(p.name, watch)
    return watch.status(r, p.digest)
  }

  const refreshView = async (): Promise<void> => {
    if (directory === undefined) return
    try {
      const plans = await directory.plans()
      const nodes = await directory.nodes(liveNodes())
      const table = new Map<string, string[]>()
      for (const p of plans.values()) {
        if (p.max === 0) continue
        const sightings = await directory.sightings(placementPlan(p), nodes)
        // watched every refresh, so a new instance that never becomes healthy is called stuck in time
        rolloutOf(p, nodes, sightings)
        // during a rolling upgrade the old bundle's instances serve until they give way
        table.set(p.name, sightings.filter(s => s.health === 'healthy' && (s.digest === p.digest || p.from?.includes(s.digest) === true)).map(s => s.peerId))
      }
      plansSeen = new Set([...plans.values()].filter(p => p.max > 0).map(p => p.name))
      endpointTable = table
    } catch (err) {
      ctx?.log.debug({ err: (err as Error).message }, 'workloads: gateway view not refreshed')
    }
  }

  /** The key that signs plans here: the root key when this node holds it, else this node's key with its operator grant. */
  const planSigner = (c: DaemonContext): { signer: { secretKey: Uint8Array, peerId: string }, grant?: Uint8Array, expiresAt?: number } => {
    const root = c.home.loadRootKey(c.network)
    if (root !== undefined) return { signer: { secretKey: root, peerId: peerIdOfPublicKey(getPublicKey(root)) } }
    const grant = loadOperatorGrant(c.home)
    if (grant === undefined) throw new ApiError(403, 'this node may not plan applications: it holds neither the network root key nor an operator grant (on the administrator node: mycelium network grant-operator <this node\'s peer id>, then here: mycelium app use-grant <token>)')
    const decoded = decodeOperatorGrant(grant)
    if (!operatorGrantAdmits(grant, { rootPublicKey: c.network.rootPublicKey, operator: self().peerId, at: Date.now() })) throw new ApiError(403, `this node's operator grant is not valid now (it ran until ${new Date(decoded.expiresAt).toISOString()}, or is for another node or network); ask the administrator for a new one`)
    return { signer: self(), grant, expiresAt: decoded.expiresAt }
  }

  /** The other live nodes that report an instance of `name` (or the one `node` names): the ones running it first, then any that ran it (a finished job). */
  const logHolders = async (name: string, node: string | undefined): Promise<string[]> => {
    const { directory: d } = running()
    const live = liveNodes()
    const reported = (await d.reported(name)).filter(s => live.has(s.peerId) && s.peerId !== self().peerId && (node === undefined || s.peerId.endsWith(node)))
    const order = [...reported.filter(s => s.health !== 'done'), ...reported.filter(s => s.health === 'done')].map(s => s.peerId)
    if (order.length === 0) throw new ApiError(404, node === undefined ? `no live node reports an instance of ${name}` : `no live node …${node.slice(-8)} reports an instance of ${name}`)
    return order
  }

  /** A grant that shows another node this one may read logs: fresh from the root key, else the operator grant it holds. */
  const readerGrant = (c: DaemonContext): Uint8Array => {
    const root = c.home.loadRootKey(c.network)
    if (root !== undefined) return encodeOperatorGrant(signOperatorGrant(root, { operator: self().peerId, issuedAt: Date.now(), ttlMs: 60_000 }))
    const grant = loadOperatorGrant(c.home)
    if (grant !== undefined && operatorGrantAdmits(grant, { rootPublicKey: c.network.rootPublicKey, operator: self().peerId, at: Date.now() })) return grant
    throw new ApiError(403, 'reading the logs of another node needs the network root key or an operator grant on this node (mycelium network grant-operator, app use-grant)')
  }

  const localBundle = async (digest: string): Promise<SignedBundle> => {
    const { store: s, directory: d } = running()
    const held = s.open(digest)
    // a plan is about to name it: the collector's grace starts again
    if (held !== undefined) { s.touch(digest); return held }
    const holders = (await d.holders(digest)).filter(h => h !== self().peerId)
    try {
      await exchange!.fetch(digest, holders)
    } catch (err) {
      throw new ApiError(404, `bundle ${digest} is not on this node and could not be fetched: ${(err as Error).message} (publish it first: mycelium app publish FILE)`)
    }
    return s.open(digest)!
  }

  /**
   * The voters of a single-instance application's lease. They stay what an earlier plan of the
   * application named: a new group could grant a term while a holder cut off from both still
   * runs under the old one. The first plan takes the primary epoch's committee, else the live
   * sclerotia (at most 7).
   */
  const leaseVoters = async (name: string): Promise<string[]> => {
    const { directory: d, spores } = running()
    const earlier = (await d.pending()).get(name) ?? (await d.plans()).get(name)
    if (earlier?.voters !== undefined && earlier.voters.length > 0) return earlier.voters
    const committee = [...spores.primary.committee()].sort()
    const group = committee.length > 0 ? committee : [...liveNodes()].filter(([, role]) => role === 'sclerotium').map(([id]) => id).sort()
    if (group.length === 0) throw new ApiError(409, 'a single-instance application (--max 1) needs sclerotia to vote its lease, and this network has none right now')
    return group.slice(0, 7)
  }

  /**
   * The bundles a new plan of `name` rolls from: the one the plan in force (or waiting) names,
   * if another, and those it still rolled from, so instances of any of them give way one at a
   * time (placement/rollout.ts).
   */
  const rollsFrom = async (name: string, digest: string): Promise<string[]> => {
    const { directory: d } = running()
    const earlier = (await d.pending()).get(name) ?? (await d.plans()).get(name)
    if (earlier === undefined) return []
    const named = earlier.max === 0 ? [] : [earlier.digest]
    return [...new Set([...named, ...(earlier.from ?? [])])].filter(x => x !== digest).slice(0, 4)
  }

  const plan = async (b: Record<string, unknown>): Promise<unknown> => {
    const { ctx: c } = running()
    const name = appName(b.name)
    const digest = b.digest
    if (typeof digest !== 'string' || !BUNDLE_DIGEST.test(digest)) throw new ApiError(400, 'digest must be the 64 hex digits that app publish printed')
    const min = count(b.min, 'min', 1)
    const max = count(b.max, 'max', Math.max(min, 1))
    if (min > max) throw new ApiError(400, `min ${min} is above max ${max}`)
    const bundle = await localBundle(digest)
    if (bundle.manifest.name !== name) throw new ApiError(400, `bundle ${digest.slice(0, 12)} is application ${bundle.manifest.name}, not ${name}`)
    const why = refusal(bundle)
    if (why !== undefined) throw new ApiError(403, why)
    const roles = b.roles === undefined ? bundle.manifest.placement.roles : b.roles
    if (!Array.isArray(roles) || roles.length === 0 || !roles.every(r => r === 'sclerotium' || r === 'rhizomorph' || r === 'hyphae')) throw new ApiError(400, 'roles must list sclerotium, rhizomorph or hyphae')
    const bundleArch = bundle.manifest.placement.arch === 'any' ? undefined : bundle.manifest.placement.arch
    let planArch = bundleArch
    if (b.arch !== undefined && b.arch !== 'any') {
      if (b.arch !== 'x86_64' && b.arch !== 'aarch64') throw new ApiError(400, 'arch must be any, x86_64 or aarch64')
      if (bundleArch !== undefined && !bundleArch.includes(b.arch)) throw new ApiError(400, `the bundle has nothing to run on ${b.arch} (it runs on ${bundleArch.join(', ')})`)
      planArch = [b.arch]
    }
    const { signer, grant, expiresAt } = planSigner(c)
    // a plan nothing can run is a mistake (an architecture no node has, a label nobody carries):
    // refused with the reasons rather than certified and never started
    if (min > 0) {
      const nodes = await running().directory.nodes(liveNodes())
      const trial = { name, digest, min, max, kind: bundle.manifest.kind, roles: roles as string[], ...(planArch === undefined || bundle.manifest.kind === 'job' ? {} : { arch: planArch }), memoryMb: bundle.manifest.resources.memoryMb, labels: bundle.manifest.placement.labels }
      if (nodes.every(n => unfitReason(trial, n) !== undefined)) {
        const why = nodes.slice(0, 4).map(n => `${n.peerId.slice(-8)}: ${unfitReason(trial, n)!}`).join('; ')
        throw new ApiError(409, `no live node can run ${name}: ${why}`)
      }
    }
    const voters = max === 1 && bundle.manifest.kind === 'service' ? await leaseVoters(name) : undefined
    const from = await rollsFrom(name, digest)
    const value = {
      ...(from.length === 0 ? {} : { from }),
      ...(voters === undefined ? {} : { voters }),
      digest, min, max, kind: bundle.manifest.kind, roles: [...new Set(roles as string[])].sort(),
      ...(planArch === undefined || bundle.manifest.kind === 'job' ? {} : { arch: [...planArch].sort() }),
      memoryMb: bundle.manifest.resources.memoryMb, cpuMillis: bundle.manifest.resources.cpuMillis,
      ...(Object.keys(bundle.manifest.placement.labels).length === 0 ? {} : { labels: nodeLabels(bundle.manifest.placement.labels) }),
      ...(grant === undefined ? {} : { grant })
    }
    let entry
    try {
      entry = await publish(signer, { type: 'plan', key: name, value, ...(expiresAt === undefined ? {} : { expiresAt }) })
    } catch (err) {
      if (err instanceof SchemaError) throw new ApiError(400, `invalid plan: ${err.message}`)
      throw err
    }
    reconciler?.poke()
    return { name, digest, min, max, kind: value.kind, roles: value.roles, arch: value.arch ?? 'any', ...(voters === undefined ? {} : { voters }), signer: signer.peerId, seq: entry.seq, certified: false, note: running().directory.certifying() ? 'the plan takes effect once the next primary epoch certifies it' : 'this network certifies no primary epochs (too few sclerotia): the plan takes effect now, from the latent spore' }
  }

  const appView = async (p: PlanRecord): Promise<Record<string, unknown>> => {
    const { directory: d, instances: inst } = running()
    const nodes = await d.nodes(liveNodes())
    const pp = placementPlan(p)
    const sightings = await d.sightings(pp, nodes)
    const local = inst.view(p.name)
    const upgrade = rolloutOf(p, nodes, sightings)
    return {
      ...(upgrade === undefined ? {} : { rollout: upgrade }),
      name: p.name, digest: p.digest, kind: p.kind ?? 'service', min: p.min, max: p.max, roles: p.roles ?? DEFAULT_ROLES, arch: p.arch ?? 'any',
      certified: p.certified, removed: p.max === 0, signer: p.origin,
      hosts: hostsOf(pp, nodes, sightings),
      unfit: nodes.map(n => ({ peerId: n.peerId, why: unfitReason(pp, n) })).filter(x => x.why !== undefined),
      instances: sightings.map(s => ({ peerId: s.peerId, digest: s.digest, health: s.health, ...(s.exit === undefined ? {} : { exitCode: s.exit }), ...(s.peerId === self().peerId && local !== undefined ? { restarts: local.restarts, state: local.state, limits: local.limits } : {}) })),
      ...(local === undefined ? {} : { local: { ...local, ...(leases?.status(p.name) === undefined ? {} : { lease: leases.status(p.name) }) } }),
      ...(p.voters === undefined ? {} : { voters: p.voters }),
      ...(reconciler?.failure(p.name) === undefined ? {} : { localFailure: reconciler.failure(p.name) })
    }
  }

  return {
    name: 'workloads',

    async start (c) {
      ctx = c
      // first: a bad setting stops the start before the workloads touch anything
      settings = workloadsSettingsFromEnv()
      const spores = options.spores.spores()
      if (spores === undefined) throw new Error('the workloads need the spores')
      store = new BundleStore(c.home.path('apps/bundles'))
      directory = new AppDirectory(spores)
      exchange = new BundleExchange({ host: c.host(), store, networkId: c.network.networkId, log: c.log.child({ area: 'workloads' }) })
      await exchange.start()
      if (arch === undefined) c.log.warn({ arch: osArch() }, 'this architecture runs WebAssembly jobs only: native bundles are built for x86_64 and aarch64')
      instances = new LocalInstances({ dir: c.home.path('apps/instances'), arch: arch ?? 'x86_64', log: c.log.child({ area: 'workloads' }), onChange: (name) => { void publishEndpoint(name); reconciler?.poke(); follows?.instanceChanged(name) } })
      logs = new LogExchange({
        host: c.host(), networkId: c.network.networkId, rootPublicKey: c.network.rootPublicKey, log: c.log.child({ area: 'workloads' }),
        read: async (app, stream, tail) => {
          const dir = instances?.logDirOf(app)
          return dir === undefined ? undefined : await readLog(dir, stream, { tailBytes: tail })
        }
      })
      await logs.start()
      follows = new LogFollowService({
        host: c.host(), networkId: c.network.networkId, rootPublicKey: c.network.rootPublicKey, log: c.log.child({ area: 'workloads' }),
        logOf: (app) => {
          const dir = instances?.logDirOf(app)
          const view = instances?.view(app)
          return dir === undefined ? undefined : { logDir: dir, running: instances?.names().includes(app) === true, ...(view === undefined ? {} : { instance: `${view.digest}@${view.startedAt}` }) }
        },
        maxFollowers: settings.logFollowers,
        limits: { holdMs: settings.logFollowHoldMs }
      })
      await follows.start()
      gateway = new AppGateway({
        host: c.host(),
        networkId: c.network.networkId,
        self: self().peerId,
        log: c.log.child({ area: 'gateway' }),
        localPort: (app) => instances?.healthyPort(app),
        endpoints: (app) => endpointTable.get(app) ?? [],
        known: (app) => plansSeen.has(app)
      })
      await gateway.start()
      leases = new AppLeases({ host: c.host(), networkId: c.network.networkId, homeDir: c.home.dir, log: c.log.child({ area: 'app-lease' }) })
      await leases.start()
      const local = instances
      const held = leases
      reconciler = new Reconciler({
        self: self().peerId, directory, liveNodes, instances, exchange, store, refusal, holding: announceHolding, log: c.log.child({ area: 'workloads' }),
        mayStart: async (p) => !isLeased(p) || await held.acquire(p.name, p.voters!),
        started: (p) => {
          if (!isLeased(p)) return
          held.keep(p.name, {
            freeze: async () => { local.freeze(p.name) },
            thaw: () => { local.thaw(p.name) },
            superseded: () => { void local.stop(p.name) }
          })
        },
        stopped: async (name) => { await held.release(name) }
      })
      reconciler.start(RECONCILE_MS)
      refresh = setInterval(() => { for (const name of instances?.names() ?? []) void publishEndpoint(name) }, ENDPOINT_REFRESH_MS)
      refresh.unref()
      viewTimer = setInterval(() => { void refreshView() }, RECONCILE_MS)
      viewTimer.unref()
      void refreshView()
      const fetcher = exchange
      collector = new BundleCollector({ store, log: c.log.child({ area: 'workloads' }), graceMs: settings.graceMs, inUse: () => fetcher.fetchingNow() })
      dirCollector = new InstanceDirCollector({ root: c.home.path('apps/instances'), log: c.log.child({ area: 'workloads' }), graceMs: settings.graceMs })
      collectTimer = setInterval(() => { void collectBundles() }, settings.collectEveryMs)
      collectTimer.unref()
    },

    async stop () {
      // first, while the instances still run: followers elsewhere hear that this node leaves
      await follows?.stop()
      clearInterval(refresh)
      clearInterval(viewTimer)
      clearInterval(collectTimer)
      await reconciler?.stop()
      const names = instances?.names() ?? []
      await instances?.stopAll()
      for (const name of names) await leases?.release(name)
      await leases?.stop()
      // say so before leaving, where the spores still run: the gateway stops routing here at once
      await Promise.all(names.map(async n => { await publishEndpoint(n) }))
      await gateway?.stop()
      await logs?.stop()
      await exchange?.stop()
      reconciler = undefined
      instances = undefined
    },

    status () {
      if (instances === undefined) return {}
      const held = store?.digests() ?? []
      return { apps: { running: instances.names().length, limits: instances.limits, logFollowers: follows?.followers ?? 0, bundles: { held: held.length, bytes: held.reduce((n, d) => n + (store?.size(d) ?? 0), 0), removed: collector?.removedCount ?? 0, removedBytes: collector?.removedBytes ?? 0 } } }
    },

    gateway: async (req, res, path) => {
      if (gateway === undefined) { res.writeHead(503, { 'content-type': 'text/plain' }).end('the gateway is not running yet\n'); return }
      await gateway.handle(req, res, path)
    },

    routes: (): Routes => ({
      'POST /apps/publish': async ({ body }) => {
        const { store: s } = running()
        const file = record(body).file
        if (typeof file !== 'string' || file === '') throw new ApiError(400, 'file must be the path of a .spore bundle')
        const path = resolve(file)
        let bytes: Uint8Array
        try {
          if (statSync(path).size > MAX_BUNDLE_BYTES) throw new ApiError(400, `${path} is larger than a bundle may be (${MAX_BUNDLE_BYTES} bytes)`)
          bytes = readFileSync(path)
        } catch (err) {
          if (err instanceof ApiError) throw err
          throw new ApiError(400, `cannot read ${path}: ${(err as Error).message}`)
        }
        let bundle: SignedBundle
        try {
          bundle = openBundle(bytes)
        } catch (err) {
          if (err instanceof InvalidBundleError) throw new ApiError(400, `${path} is not a valid bundle: ${err.message}`)
          throw err
        }
        const why = refusal(bundle)
        if (why !== undefined) throw new ApiError(403, why)
        s.put(bytes, bundle.digest)
        await announceHolding(bundle)
        return { digest: bundle.digest, name: bundle.manifest.name, version: bundle.manifest.version, kind: bundle.manifest.kind, size: bytes.length, signer: bundle.signer }
      },
      'POST /apps/plan': async ({ body }) => await plan(record(body)),
      'GET /apps/bundles': async () => {
        const { store: s } = running()
        const wanted = await wantedBundles()
        const fetching = new Set(exchange?.fetchingNow() ?? [])
        const now = Date.now()
        const held = s.digests().map(digest => {
          const storedAt = s.storedAt(digest) ?? now
          const why = wanted.get(digest) ?? (fetching.has(digest) ? 'being fetched' : undefined)
          return { digest, size: s.size(digest) ?? 0, storedAt, ...(why === undefined ? { removableAt: storedAt + settings!.graceMs } : { kept: why }) }
        })
        return {
          held, graceMs: settings!.graceMs, removed: collector?.removedCount ?? 0, removedBytes: collector?.removedBytes ?? 0, recent: collector?.recent ?? [],
          instanceDirs: { removed: dirCollector?.removedCount ?? 0, recent: dirCollector?.recent ?? [] }
        }
      },
      'POST /apps/rm': async ({ body }) => {
        const name = appName(record(body).name)
        const { directory: d, ctx: c } = running()
        const current = (await d.pending()).get(name) ?? (await d.plans()).get(name)
        if (current === undefined) throw new ApiError(404, `no application ${name} is planned`)
        const { signer, grant, expiresAt } = planSigner(c)
        // the lease voters stay with the name (see leaseVoters)
        const value = { digest: current.digest, min: 0, max: 0, kind: current.kind ?? 'service', ...(current.voters === undefined ? {} : { voters: current.voters }), ...(grant === undefined ? {} : { grant }) }
        const entry = await publish(signer, { type: 'plan', key: name, value, ...(expiresAt === undefined ? {} : { expiresAt }) })
        reconciler?.poke()
        return { name, removed: true, seq: entry.seq }
      },
      'GET /apps': async () => {
        const { directory: d } = running()
        const plans = await d.plans()
        const pending = await d.pending()
        const out = []
        for (const p of plans.values()) out.push({ ...await appView(p), ...(pending.has(p.name) ? { pending: pending.get(p.name) } : {}) })
        for (const p of pending.values()) if (!plans.has(p.name)) out.push({ name: p.name, digest: p.digest, min: p.min, max: p.max, certified: false, pending: p, instances: [] })
        return out
      },
      'GET /apps/status': async ({ query }) => {
        const name = appName(query.get('name'))
        const { directory: d } = running()
        const p = (await d.plans()).get(name)
        const pending = (await d.pending()).get(name)
        if (p === undefined && pending === undefined) throw new ApiError(404, `no application ${name} is planned`)
        return p === undefined ? { name, certified: false, pending, instances: [] } : { ...await appView(p), ...(pending === undefined ? {} : { pending }) }
      },
      'GET /apps/logs': async ({ query }) => {
        const { name, stream, tail, node } = logQuery(query)
        const { instances: inst, ctx: c } = running()
        const dir = inst.logDirOf(name)
        if (dir !== undefined && (node === undefined || self().peerId.endsWith(node))) return { name, stream, node: self().peerId, local: true, text: await readLog(dir, stream, { tailBytes: tail }) }
        const order = await logHolders(name, node)
        const grant = readerGrant(c)
        const failures: string[] = []
        for (const peer of order) {
          try {
            const text = await logs!.fetch(peer, { app: name, stream, tail, grant })
            if (text !== undefined) return { name, stream, node: peer, text }
            failures.push(`${peer.slice(-8)} holds no log of it`)
          } catch (err) {
            failures.push((err as Error).message)
          }
        }
        throw new ApiError(502, `the logs of ${name} could not be read: ${failures.join('; ')}`)
      },
      // `app logs NAME -f`: the application's output as it is written, from this node's own
      // instance (its files) or over one stream to the node that runs one, which pushes it;
      // when that instance goes away the follow goes on with the one that runs now
      // (log-follow-lines.ts). With `--node` the CLI follows this node's files itself.
      'GET /apps/logs/follow': {
        stream: true,
        handler: async ({ query }, signal) => {
          const { name, stream, tail, node } = logQuery(query)
          const { ctx: c, instances: inst, directory: d } = running()
          const me = self().peerId
          const here = (): RunningInstance[] => {
            const view = inst.view(name)
            return view !== undefined && view.kind === 'service' && (node === undefined || me.endsWith(node)) ? [{ peer: me, since: view.startedAt }] : []
          }
          const elsewhere = async (): Promise<RunningInstance[]> => {
            const live = liveNodes()
            return (await d.reported(name)).filter(s => s.health !== 'done' && live.has(s.peerId) && s.peerId !== me && (node === undefined || s.peerId.endsWith(node))).map(s => ({ peer: s.peerId, since: s.issuedAt }))
          }
          const reportedAt = new Map((await d.reported(name)).map(s => [s.peerId, s.issuedAt]))
          const first = [...here(), ...(await logHolders(name, node).catch((err: Error) => { if (here().length === 0) throw err; return [] })).map(peer => ({ peer, since: reportedAt.get(peer) ?? 0 }))]
          // another node's logs need authority; this node's own do not
          if (first.every(i => i.peer !== me)) readerGrant(c)
          const protocol = logFollowProtocol(c.network.networkId)
          const open = async (peer: string): Promise<AsyncIterable<FollowEvent> | undefined> => {
            if (peer === me) {
              const view = inst.view(name)
              const logDir = inst.logDirOf(name)
              if (view === undefined || logDir === undefined) return undefined
              return localLogOutput({ app: name, logDir, stream, tailBytes: tail, signal, stillRuns: () => inst.view(name)?.startedAt === view.startedAt })
            }
            let grant: Uint8Array
            try {
              grant = readerGrant(c)
            } catch (err) {
              throw new LogFollowRefusedError((err as Error).message)
            }
            return (await openRemoteLogFollow({ host: c.host(), protocol, peer, request: { app: name, stream, tail, grant }, signal }))?.follow()
          }
          const planned = async (): Promise<boolean> => ((await d.plans()).get(name)?.max ?? 0) > 0
          return await followLines({ app: name, pinned: node !== undefined, locate: async () => [...here(), ...await elsewhere()], open, planned, signal }, first)
        }
      }
    })
  }
}
