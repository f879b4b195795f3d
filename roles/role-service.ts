// One node's role, kept current: it measures (hardware, power, network), decides through the
// policy, balances with the network through signed advertisements, and applies the result
// at runtime. The daemon constructs it after libp2p has started and hands it the host, the
// gossipsub service and the effects it implements.
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import type { HardwareFacts, NetworkFacts } from './probe/hardware-facts.ts'
import { unmeasuredNetwork } from './probe/hardware-facts.ts'
import { measureHardware, profiledNetwork, type HardwareProfile } from './probe/hardware-profile.ts'
import { probeBattery } from './probe/hardware-probe.ts'
import type { LoadWindow } from './probe/linux-facts.ts'
import { decideRole, type RoleDecision } from './policy/role-decision.ts'
import { nextRoleState, canChangeRole, HOLD, type RoleState, type BalanceAdvice } from './policy/role-transition.ts'
import type { Role, RoleOverride } from './policy/role.ts'
import type { Thresholds } from './policy/thresholds.ts'
import { balanceAdvice, DEFAULT_BALANCE, type BalanceOptions, type BalanceOutcome, type BalanceMember } from './balance/sclerotium-balance.ts'
import { RoleView } from './balance/role-view.ts'
import { RoleGossip } from './balance/role-gossip.ts'
import { AdvertSchedule } from './balance/advert-schedule.ts'
import { RoleViewSync, viewSyncProtocol, type ViewSyncHost } from './balance/role-view-sync.ts'
import type { RoleAdvertisement } from './balance/role-advertisement.ts'
import { RoleController } from './behaviour/role-controller.ts'
import { AnchorKeeper } from './behaviour/anchor-keeper.ts'
import type { RoleEffects } from './behaviour/role-effects.ts'
import type { RoleBehaviour } from './behaviour/role-behaviour.ts'
import { measureNetwork } from './measure/network-measurement.ts'
import type { NetworkProbe } from './measure/network-probe.ts'
import { roleReport, type RoleReport } from './role-report.ts'
import { silentLogger, systemTimers, type RoleHost, type RolePubsub, type RoleLogger, type RoleTimer, type RoleTimers } from './role-host.ts'
import { roleTiming, type RoleTiming } from './role-timing.ts'
import type { RoleMetrics } from './role-metrics.ts'

export interface RoleServiceOptions {
  host: RoleHost
  pubsub: RolePubsub
  /** The node's Ed25519 secret key (32 bytes): advertisements are signed with it. */
  secretKey: Uint8Array
  /** Gossip topic for advertisements, e.g. `mycelium/<networkId>/roles/1`. */
  topic: string
  effects: RoleEffects
  /** Data directory: its filesystem's free space counts. */
  dataDir: string
  /** The probe-protocol service; without it reachability stays unknown. */
  probe?: Pick<NetworkProbe, 'measureRtt' | 'measureThroughput' | 'requestDialBack'>
  override?: RoleOverride
  /** Injected hardware profile; a function is re-read on every power poll (a harness can change it). */
  profile?: HardwareProfile | (() => HardwareProfile | undefined)
  log?: RoleLogger
  now?: () => number
  timing?: Partial<RoleTiming>
  balance?: Partial<BalanceOptions>
  thresholds?: Thresholds
  /** Sclerotia a hyphae stays connected to (default 2). */
  anchors?: number
  metrics?: RoleMetrics
  onChange?: (status: RoleStatus) => void
  /** Default: the process's timers (a simulator injects a virtual clock's, with `now`). */
  timers?: RoleTimers
  /** A load sample opened before start (openLoadWindow): the first measurement waits only for what is left of it. */
  loadWindow?: LoadWindow
  /** Default: decodeRoleAdvertisement (see RoleGossipOptions.decode). */
  decodeAdvertisement?: (bytes: Uint8Array, topic: string) => RoleAdvertisement
  /** Whether this node keeps a link to the peer (RoleGossipOptions.keepsLink); default: every link. */
  keepsLink?: (peerId: string) => boolean
  /** Who may ask this node for its role view (role-view-sync.ts): verified members; default: any peer. */
  servesViewTo?: (peerId: string) => boolean
  /** In [0, 1) for the refresh's and the witnesses' jitter (default Math.random; a simulator passes its seeded one). */
  random?: () => number
}

export interface RoleStatus {
  role: Role
  dedicated: boolean
  override: RoleOverride
  score: number
  since: number
  changes: number
  reasons: string[]
  behaviour?: RoleBehaviour
  balance?: BalanceOutcome
  anchors: string[]
}

// Small devices (a Pi without a clock battery) can run minutes off before NTP syncs.
const MAX_CLOCK_SKEW_MS = 5 * 60_000
/** A peer this node does not know is asked for its view at most this often (role-view-sync.ts). */
const VIEW_SYNC_AGAIN_MS = 30_000
const VIEW_SYNCS_AT_ONCE = 2
/** Ticks a re-advertisement owed to a peer met through a catch-up is tried (see `owed`). */
const OWED_TICKS = 4

export class RoleNotStartedError extends Error {
  readonly name = 'RoleNotStartedError'
}

export class RoleService {
  private readonly options: RoleServiceOptions
  private readonly timing: RoleTiming
  private readonly balance: BalanceOptions
  private readonly now: () => number
  private readonly log: RoleLogger
  private readonly view: RoleView
  private readonly gossip: RoleGossip
  private readonly schedule: AdvertSchedule
  private viewSync?: RoleViewSync
  private readonly viewSynced = new Map<string, number>()
  private viewSyncing = 0
  /** Peers met through a catch-up that this node's advertisement has yet to reach directly, with the ticks left to try. */
  private readonly owed = new Map<string, number>()
  /** The score in this node's last advertisement: the one every other node ranks it by. */
  private advertisedScore?: number
  private readonly controller: RoleController
  private readonly anchorKeeper: AnchorKeeper
  private override: RoleOverride
  private facts?: HardwareFacts
  private network?: NetworkFacts
  private decision?: RoleDecision
  private state?: RoleState
  private changeReasons: string[] = []
  private holdReasons: string[] = []
  private outcome?: BalanceOutcome
  private pending?: { action: BalanceAdvice['action'], since: number }
  private startedAt = 0
  private readonly missingSince = new Map<string, number>()
  private profileKey = ''
  private readonly sched: RoleTimers
  private readonly timers: RoleTimer[] = []
  private confirmTimer?: RoleTimer
  private queue: Promise<void> = Promise.resolve()
  private running = false
  private measuringNetwork = false
  private networkTimer?: RoleTimer
  private readonly onPeerConnect = (evt: CustomEvent<PeerId>): void => {
    // nobody answered the last measurement: measure again shortly after the first peer arrives
    if (this.network?.peers === 0) this.scheduleNetworkMeasurement()
    this.catchUpFrom(evt.detail, true)
  }

  constructor (options: RoleServiceOptions) {
    this.options = options
    this.timing = roleTiming(options.timing)
    this.balance = { ...DEFAULT_BALANCE, ...options.balance }
    this.now = options.now ?? Date.now
    this.log = options.log ?? silentLogger
    this.sched = options.timers ?? systemTimers
    this.override = options.override ?? 'auto'
    this.view = new RoleView({ ttlMs: this.timing.ttlMs, maxSkewMs: MAX_CLOCK_SKEW_MS, maxNodes: 4096 })
    this.gossip = new RoleGossip({
      host: options.host,
      pubsub: options.pubsub,
      topic: options.topic,
      secretKey: options.secretKey,
      view: this.view,
      now: this.now,
      suspectGraceMs: this.timing.suspectGraceMs,
      log: this.log,
      timers: this.sched,
      decode: options.decodeAdvertisement,
      keepsLink: options.keepsLink,
      random: options.random,
      onNamed: () => { this.schedule.ask(); void this.advertise() },
      onChange: (why, kind) => {
        // a newcomer changes the ranking: advice must hold again for a full period
        if (kind === 'joined') this.pending = undefined
        void this.evaluate(why)
      }
    })
    this.schedule = new AdvertSchedule(this.timing.refreshIntervalMs, options.random, this.timing.advertiseIntervalMs)
    this.anchorKeeper = new AnchorKeeper({
      host: options.host,
      sclerotia: () => this.view.advertisements().filter(a => a.role === 'sclerotium').map(a => ({ peerId: a.peerId, addrs: a.addrs, score: a.score })),
      anchors: options.anchors,
      log: this.log
    })
    this.controller = new RoleController({ effects: options.effects, anchors: this.anchorKeeper, log: this.log })
  }

  private lastProfile?: HardwareProfile

  /** The injected profile; an unreadable one keeps the last good one (a harness may be rewriting it). */
  private profile (): HardwareProfile | undefined {
    const p = this.options.profile
    if (typeof p !== 'function') return p
    try {
      this.lastProfile = p()
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'hardware profile unreadable; keeping the previous one')
    }
    return this.lastProfile
  }

  async start (signal?: AbortSignal): Promise<void> {
    this.startedAt = this.now()
    // a profile that cannot be read at start is an error for the operator, not a fallback
    const given = this.options.profile
    const profile = typeof given === 'function' ? given() : given
    this.lastProfile = profile
    this.profileKey = JSON.stringify(profile ?? null)
    this.facts = await measureHardware({ dataDir: this.options.dataDir, profile, signal, now: this.now, loadWindow: this.options.loadWindow })
    this.network = profiledNetwork(unmeasuredNetwork(this.now()), profile)
    this.decide()
    this.running = true
    this.gossip.start()
    const host = this.options.host as unknown as Partial<ViewSyncHost>
    if (typeof host.handle === 'function' && typeof host.dialProtocol === 'function' && typeof host.unhandle === 'function') {
      this.viewSync = new RoleViewSync(host as ViewSyncHost, viewSyncProtocol(this.options.topic), () => {
        const own = this.gossip.ownSigned()
        return own === undefined ? this.view.signed() : [own, ...this.view.signed()]
      }, this.options.servesViewTo)
      await this.viewSync.start()
    }
    this.options.host.addEventListener('peer:connect', this.onPeerConnect)
    await this.evaluate('start')
    // peers met before the service started: catch up from them too
    for (const peer of this.options.host.getPeers()) this.catchUpFrom(peer, true)

    this.every(() => { void this.tick() }, this.timing.advertiseIntervalMs)
    this.every(() => { void this.pollPower() }, this.timing.powerPollIntervalMs)
    this.every(() => { void this.remeasureHardware() }, this.timing.hardwareIntervalMs)
    if (this.options.probe !== undefined) {
      this.scheduleNetworkMeasurement()
      this.every(() => { void this.measureNetworkNow() }, this.timing.networkIntervalMs)
    }
  }

  async stop (): Promise<void> {
    this.running = false
    for (const t of this.timers.splice(0)) this.sched.clear(t)
    this.sched.clear(this.confirmTimer)
    this.sched.clear(this.networkTimer)
    this.options.host.removeEventListener('peer:connect', this.onPeerConnect)
    // a clean stop leaves every view now, not when the entry ages out
    await this.gossip.leave()
    await this.viewSync?.stop().catch(() => {})
    this.gossip.stop()
    this.anchorKeeper.stop()
    await this.queue
  }

  private every (fn: () => void, ms: number): void {
    const t = this.sched.setInterval(fn, ms)
    t.unref?.()
    this.timers.push(t)
  }

  private scheduleNetworkMeasurement (): void {
    if (this.options.probe === undefined || this.networkTimer !== undefined || !this.running) return
    this.networkTimer = this.sched.setTimeout(() => {
      this.networkTimer = undefined
      void this.measureNetworkNow()
    }, this.timing.firstNetworkMeasurementMs)
    this.networkTimer.unref?.()
  }

  private decide (): void {
    if (this.facts === undefined || this.network === undefined) return
    this.decision = decideRole(this.facts, this.network, { override: this.override, thresholds: this.options.thresholds })
    this.options.metrics?.setScore(this.decision.score)
  }

  private ownMember (now: number): BalanceMember {
    const state = this.state
    const decision = this.decision
    if (state === undefined || decision === undefined) throw new RoleNotStartedError('the role service has not started')
    return {
      peerId: this.options.host.peerId.toString(),
      role: state.role,
      dedicated: state.dedicated,
      pinned: state.override !== 'auto',
      score: decision.score,
      fit: decision.sclerotiumFit,
      movable: canChangeRole(state, now, this.timing.hysteresisMs)
    }
  }

  private async tick (): Promise<void> {
    if (!this.running) return
    this.view.expire(this.now())
    // a neighbour on the topic whose advertisement never reached this node: a publication was
    // lost (gossip is best effort while meshes form); ask that neighbour for its view
    try {
      for (const peer of this.options.pubsub.getSubscribers(this.options.topic)) if (this.view.get(peer.toString()) === undefined) this.catchUpFrom(peer)
    } catch {}
    await this.advertise()
    await this.evaluate('periodic')
  }

  /** Publishes this node's advertisement if it changed or its refresh is due (advert-schedule.ts). */
  private async advertise (): Promise<void> {
    if (this.state === undefined || !this.running) return
    const now = this.now()
    const { peerId: _p, ...own } = this.ownMember(now)
    const content = { ...own, addrs: this.gossip.currentAddrs() }
    if (this.owed.size > 0) this.schedule.ask()
    if (!this.schedule.due(now, content)) return
    const { ad, sent, recipients } = await this.gossip.publish(own)
    this.advertisedScore = ad.score
    if (sent) this.schedule.published(now, ad)
    else this.schedule.failed()
    // a peer just met may not have told gossipsub it is on the topic yet: try again next tick
    for (const [peer, left] of this.owed) {
      if (recipients === undefined || recipients.includes(peer) || left <= 1) this.owed.delete(peer)
      else this.owed.set(peer, left - 1)
    }
  }

  /**
   * A peer this node has no advertisement of (a newcomer, or this node is the newcomer, or a
   * partition healed): ask it for its view once, rather than wait for everyone's refresh. On a
   * new connection (`connected`) always; otherwise (a neighbour whose advertisement is missing
   * at a tick) at most every VIEW_SYNC_AGAIN_MS per peer.
   */
  private catchUpFrom (peer: PeerId, connected = false): void {
    const sync = this.viewSync
    const id = peer.toString()
    const now = this.now()
    if (sync === undefined || !this.running || this.view.get(id) !== undefined || this.viewSyncing >= VIEW_SYNCS_AT_ONCE) return
    if (!connected && now - (this.viewSynced.get(id) ?? -Infinity) < VIEW_SYNC_AGAIN_MS) return
    this.viewSynced.set(id, now)
    if (this.viewSynced.size > 4096) this.viewSynced.delete(this.viewSynced.keys().next().value as string)
    this.viewSyncing++
    sync.fetch(peer).then(
      (ads) => {
        if (!this.running) return
        this.gossip.take(ads)
        // a peer this node did not know probably does not know this node either (it joined, or
        // a partition healed and a departure named this node's advertisement over there):
        // re-advertise at the next ticks until that peer got it, rather than leave it to the refresh
        this.owed.set(id, OWED_TICKS)
        if (this.owed.size > 4096) this.owed.delete(this.owed.keys().next().value as string)
      },
      (err: Error) => { this.log.debug({ peer: id, err: err.message }, 'role view catch-up failed') }
    ).finally(() => { this.viewSyncing-- })
  }

  /** Re-runs policy and balancing now; calls are serialised. */
  async evaluate (why: string): Promise<void> {
    const run = this.queue.then(async () => { await this.evaluateNow(why) })
    this.queue = run.catch((err: Error) => { this.log.error({ err: err.message }, 'role evaluation failed') })
    await this.queue
  }

  private advice (now: number): BalanceAdvice {
    const decision = this.decision
    if (decision === undefined || this.state === undefined) return HOLD
    if (now - this.startedAt < this.timing.settleMs) return { ...HOLD, reason: 'waiting for the view of the network to fill' }
    this.view.expire(now)
    const missing = this.unadvertisedPeers(now)
    if (missing > 0) {
      this.pending = undefined
      return { ...HOLD, reason: `waiting for the role advertisements of ${missing} subscribed peer(s)` }
    }
    // ranked by the score the others hold for this node, so every view ranks it alike
    const self = this.ownMember(now)
    const members = [{ ...self, score: this.advertisedScore ?? self.score }, ...this.view.advertisements()]
    const outcome = balanceAdvice(this.options.host.peerId.toString(), members, this.balance)
    this.outcome = outcome
    this.options.metrics?.setBalance?.(outcome.nodes, outcome.sclerotia, outcome.target)
    if (outcome.action === 'hold') {
      this.pending = undefined
      return outcome
    }
    // act only on advice that holds for a full confirmation period: views settle, and a
    // peer that merely lost its link to us re-appears within one advertisement interval
    if (this.pending?.action !== outcome.action) {
      this.pending = { action: outcome.action, since: now }
      this.sched.clear(this.confirmTimer)
      this.confirmTimer = this.sched.setTimeout(() => { void this.evaluate('confirmation') }, this.timing.confirmMs + 10)
      this.confirmTimer.unref?.()
      return { ...HOLD, reason: `${outcome.reason} (confirming)` }
    }
    if (now - this.pending.since < this.timing.confirmMs) return { ...HOLD, reason: `${outcome.reason} (confirming)` }
    return outcome
  }

  /**
   * Peers known to be subscribed to the roles topic (gossipsub learns this from each
   * neighbour as soon as it connects) whose advertisement has not reached us yet. Balancing
   * on a view that lacks them could promote the wrong node: a node that hears nobody thinks
   * it is alone. A peer silent for a whole ttl stops counting.
   */
  private unadvertisedPeers (now: number): number {
    const self = this.options.host.peerId.toString()
    const ids = new Set<string>()
    try {
      for (const p of this.options.pubsub.getSubscribers(this.options.topic)) ids.add(p.toString())
    } catch {}
    let missing = 0
    for (const id of ids) {
      if (id === self || this.view.get(id) !== undefined) {
        this.missingSince.delete(id)
        continue
      }
      const since = this.missingSince.get(id) ?? now
      this.missingSince.set(id, since)
      if (now - since < this.timing.ttlMs) missing++
    }
    for (const id of this.missingSince.keys()) if (!ids.has(id)) this.missingSince.delete(id)
    return missing
  }

  private async evaluateNow (why: string): Promise<void> {
    if (this.decision === undefined) return
    const now = this.now()
    const advice = this.state === undefined ? HOLD : this.advice(now)
    const transition = nextRoleState(this.state, this.decision, advice, now, this.timing.hysteresisMs)
    if (!transition.changed) {
      this.holdReasons = transition.reasons
      this.state = transition.state
      return
    }
    this.holdReasons = []
    this.changeReasons = transition.reasons
    const previous = this.state
    this.state = transition.state
    this.pending = undefined
    this.log.info({ role: this.state.role, dedicated: this.state.dedicated, why, reasons: transition.reasons }, previous === undefined ? 'role taken' : 'role changed')
    if (previous !== undefined) this.options.metrics?.roleChanged(previous.role, this.state.role)
    this.options.metrics?.setRole(this.state.role)
    try {
      await this.controller.apply(this.state.role, this.state.dedicated, this.decision.capabilities)
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'role effects incomplete')
    }
    if (this.running) await this.advertise()
    this.options.onChange?.(this.status())
  }

  private async pollPower (): Promise<void> {
    if (!this.running || this.facts === undefined) return
    const profile = this.profile()
    const key = JSON.stringify(profile ?? null)
    if (key !== this.profileKey) {
      this.profileKey = key
      await this.remeasureHardware()
      return
    }
    if (profile !== undefined || !this.facts.battery.present) return
    const battery = await probeBattery()
    if (battery === undefined || battery.onBattery === this.facts.battery.onBattery) return
    this.facts = { ...this.facts, battery }
    this.log.info({ onBattery: battery.onBattery }, 'power source changed')
    this.decide()
    await this.evaluate('power source changed')
  }

  /** Measures the hardware again and re-decides. */
  async remeasureHardware (signal?: AbortSignal): Promise<void> {
    if (!this.running) return
    const profile = this.profile()
    this.facts = await measureHardware({ dataDir: this.options.dataDir, profile, signal, now: this.now })
    if (this.network !== undefined) this.network = profiledNetwork(this.network, profile)
    this.decide()
    await this.evaluate('hardware measured')
  }

  /** Measures RTT, throughput and reachability against up to three connected peers. */
  async measureNetworkNow (signal?: AbortSignal): Promise<NetworkFacts | undefined> {
    const probe = this.options.probe
    if (probe === undefined || !this.running || this.measuringNetwork) return this.network
    this.measuringNetwork = true
    try {
      const peers: PeerId[] = this.options.host.getPeers()
      for (let i = peers.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [peers[i], peers[j]] = [peers[j], peers[i]]
      }
      const measured = await measureNetwork({ probe, peers, addrs: this.options.host.getMultiaddrs(), signal, now: this.now })
      this.network = profiledNetwork(measured, this.profile())
      this.log.debug({ network: this.network }, 'network measured')
      this.decide()
      await this.evaluate('network measured')
      return this.network
    } finally {
      this.measuringNetwork = false
    }
  }

  /** Operator override at runtime: a pin takes effect at once. */
  async setOverride (override: RoleOverride): Promise<RoleStatus> {
    this.override = override
    this.decide()
    await this.evaluate(`operator set ${override}`)
    return this.status()
  }

  status (): RoleStatus {
    const state = this.state
    const decision = this.decision
    if (state === undefined || decision === undefined) throw new RoleNotStartedError('the role service has not started')
    return {
      role: state.role,
      dedicated: state.dedicated,
      override: state.override,
      score: decision.score,
      since: state.since,
      changes: state.changes,
      reasons: this.reasons(),
      behaviour: this.controller.current(),
      balance: this.outcome,
      anchors: state.role === 'hyphae' ? this.anchorKeeper.anchors() : []
    }
  }

  private reasons (): string[] {
    const out = [...this.holdReasons, ...this.changeReasons]
    if (this.outcome !== undefined) out.push(this.outcome.reason)
    return out
  }

  /** What `mycelium role --json` prints for the running node. */
  report (): RoleReport {
    const state = this.state
    if (state === undefined || this.decision === undefined || this.facts === undefined || this.network === undefined) throw new RoleNotStartedError('the role service has not started')
    const report = roleReport(this.facts, this.network, this.decision, { role: state.role, dedicated: state.dedicated, reasons: this.reasons() })
    report.running = {
      since: new Date(state.since).toISOString(),
      changes: state.changes,
      nodes: this.view.size + 1,
      sclerotia: this.view.counts().sclerotium + (state.role === 'sclerotium' ? 1 : 0),
      target: this.outcome?.target ?? 0
    }
    return report
  }

  /** Everyone else's current advertisement (roles for `peers --json`). */
  advertisements (): RoleAdvertisement[] {
    return this.view.advertisements()
  }

  roleOf (peerId: string | PeerId): Role | undefined {
    const id = typeof peerId === 'string' ? peerId : peerId.toString()
    if (id === this.options.host.peerId.toString()) return this.state?.role
    return this.view.get(id)?.role
  }

  /** Connected sclerotia while this node is a hyphae. */
  anchors (): string[] {
    return this.anchorKeeper.anchors()
  }

  /** Peer ids of the sclerotia in the view (for dialling or committee selection). */
  sclerotia (): PeerId[] {
    return this.view.advertisements().filter(a => a.role === 'sclerotium').map(a => peerIdFromString(a.peerId))
  }
}
