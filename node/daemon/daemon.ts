// The daemon: one libp2p host of one network, its admin API, and the bookkeeping that lets
// an operator see and steer it. Everything is assembled here; the parts do not know each other.
import type { PeerId } from '@libp2p/interface'
import { Home, HomeError, randomApiToken, type NetworkInfo } from '../home/index.ts'
import { createNetwork, createInvite, admitter } from '../network/index.ts'
import { MemberHost, type CertificateChain, type RejectedConnection } from '../../membership/index.ts'
import { createHost, GOSSIP_GRAYLIST_THRESHOLD, type MyceliumHost } from '../host/index.ts'
import { AdminApi, ApiError, type Routes } from '../api/index.ts'
import { NodeMetrics } from '../metrics/index.ts'
import { AppTopics } from '../gossip/index.ts'
import type { Logger } from '../log/index.ts'
import type { DaemonConfig } from './config.ts'
import type { DaemonContext, DaemonFeature } from './feature.ts'
import { daemonFeatures } from './features.ts'

export class DaemonAlreadyRunningError extends Error {
  readonly name = 'DaemonAlreadyRunningError'
}

export class ListenError extends Error {
  readonly name = 'ListenError'
}

export interface PeerView {
  peerId: string
  addrs: string[]
  role: string
  /** this node's gossipsub score of the peer: it drops with each provably invalid message */
  gossipScore: number
  /** below the graylist threshold: this node ignores whatever the peer gossips until it decays */
  gossipIgnored: boolean
}

export type { RejectedConnection }

/** Addresses a daemon dials to reach a member again: direct ones, not a browser page's relay or WebRTC addresses. */
function directAddr (addr: string): boolean {
  return !addr.includes('/p2p-circuit') && !addr.includes('/webrtc')
}

export class Daemon {
  readonly home: Home
  readonly config: DaemonConfig
  readonly log: Logger
  readonly metrics = new NodeMetrics()
  readonly startedAt = Date.now()
  network!: NetworkInfo
  host!: MyceliumHost
  apiPort = 0
  private api!: AdminApi
  private appTopics!: AppTopics
  private chain!: CertificateChain
  /** membership on this host: verified set, roster, remembered members, redial */
  members!: MemberHost
  private stopping?: Promise<void>
  readonly features: DaemonFeature[]
  private context!: DaemonContext

  constructor (config: DaemonConfig, log: Logger) {
    this.home = new Home(config.homeDir)
    this.config = config
    this.log = log
    this.features = daemonFeatures(config)
  }

  /** Loads or creates identity, binds the admin API, starts libp2p. Fails before touching a running daemon's files. */
  async start (): Promise<void> {
    const running = this.home.loadDaemonInfo()
    if (running !== undefined) {
      const { processAlive } = await import('../api/index.ts')
      if (processAlive(running.pid) && running.pid !== process.pid) throw new DaemonAlreadyRunningError(`a daemon is already running for ${this.home.dir} (pid ${running.pid}); stop it with: mycelium stop --home ${this.home.dir}`)
    }
    this.home.ensure()
    let network = this.home.loadNetwork()
    // a member's certificate is bound to its key: a missing key must not be silently replaced
    if (network !== undefined && !this.home.hasNodeKey()) throw new HomeError(`${this.home.path('node.key')} is missing but this home is a member of ${network.name}; restore the key from a backup (or join again with a new invite in a new home)`)
    const privateKey = await this.home.loadOrCreateNodeKey()
    if (network === undefined) {
      network = await createNetwork(this.home, this.config.defaultNetworkName)
      this.log.info({ networkId: network.networkId, name: network.name }, 'created a personal network for this node')
    }
    this.network = network
    const chain = this.home.loadChain()
    if (chain === undefined) throw new HomeError(`${this.home.path('membership.cert')} is missing: join the network again with a new invite`)
    this.chain = chain
    const token = this.home.loadApiToken() ?? randomApiToken()
    this.context = {
      home: this.home,
      config: this.config,
      network,
      log: this.log,
      metrics: this.metrics,
      secretKey: privateKey.raw.subarray(0, 32),
      host: () => this.host,
      role: () => this.role(),
      peers: () => this.peers(),
      isVerified: (peerId: string) => this.members.isVerified(peerId),
      keepsLink: (peerId: string) => this.members.keepsLink(peerId),
      membership: () => this.members
    }

    this.api = new AdminApi(this.routes(), token)
    this.apiPort = await this.api.listen(this.config.apiPort)
    const apiSocket = await this.api.listenSocket(this.home.apiSocketPath()) ? this.home.apiSocketPath() : undefined

    const bootstrap = [...new Set([...this.config.bootstrap, ...this.home.loadBootstrap()])]
    this.members = this.memberHost(bootstrap)
    try {
      this.host = await createHost({
        privateKey,
        networkId: network.networkId,
        listen: this.config.listen,
        bootstrap: bootstrap.filter(a => a.includes('/p2p/')),
        membership: this.members.policy,
        isVerified: (peer: PeerId) => this.members.isVerified(peer.toString()),
        isRevoked: (peerId: string) => this.isRevoked(peerId),
        relayServer: this.config.relayServer,
        services: Object.assign({}, ...this.features.map(f => f.services?.(this.context) ?? {}))
      })
      await this.host.start()
    } catch (err) {
      await this.api.close()
      const message = (err as Error).message
      if (/EADDRINUSE|address already in use/i.test(message) || (err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new ListenError(`a listen port is in use (${this.config.listen.join(', ')}): choose others with --listen or stop the other process`)
      throw new ListenError(`cannot listen on ${this.config.listen.join(', ')}: ${message}`)
    }

    this.appTopics = new AppTopics(this.host.services.pubsub, network.networkId, this.metrics, (peerId) => this.members.isRevoked(peerId))
    await this.members.attach(this.host)
    this.watchConnections()
    for (const feature of this.features) {
      await feature.start?.(this.context)
      this.log.debug({ feature: feature.name }, 'feature started')
    }
    if (this.home.loadApiToken() === undefined) this.home.saveApiToken(token)
    this.home.saveDaemonInfo({ pid: process.pid, apiPort: this.apiPort, startedAt: this.startedAt, ...(apiSocket === undefined ? {} : { apiSocket }) })
  }

  private memberHost (bootstrap: string[]): MemberHost {
    const network = this.network
    const members = new MemberHost({
      networkId: network.networkId,
      rootPublicKey: network.rootPublicKey,
      credentials: () => ({ kind: 'member', chain: this.chain }),
      isRevoked: (peerId: string) => this.isRevoked(peerId),
      admit: admitter(this.home, network, () => Date.now()),
      presence: () => ({ role: this.role(), addrs: this.addrs() }),
      known: { initial: this.home.loadKnownPeers(), save: async (known, final) => { await this.home.saveKnownPeers(known, final) } },
      redial: { bootstrap: () => bootstrap, dialable: directAddr },
      // the tiered mesh: links by role (membership/link-policy.ts), everything else on demand
      links: {
        role: () => this.features.map(f => f.role?.()).find(r => r !== undefined),
        advertised: () => this.features.flatMap(f => f.advertisedRoles?.() ?? []),
        vouched: (peerId) => this.features.some(f => f.committee?.()?.has(peerId) === true)
      },
      log: this.log
    })
    members.onRejected((r) => {
      this.metrics.rejectedConnections.inc({ reason: r.kind })
      this.log.warn({ peer: r.peerId, reason: r.reason, kind: r.kind }, 'refused a connection that failed the membership handshake')
    })
    return members
  }

  /** A peer some feature refuses (a revoked member): no handshake, no dial, no connection. */
  private isRevoked (peerId: string): boolean {
    return this.features.some(f => f.isRevoked?.(peerId) === true)
  }

  private watchConnections (): void {
    const update = (): void => {
      this.metrics.connections.set(this.host.getConnections().length)
      this.metrics.peers.set(this.host.getPeers().length)
    }
    this.host.addEventListener('connection:open', update)
    this.host.addEventListener('connection:close', update)
    this.host.addEventListener('peer:disconnect', (evt) => {
      this.log.info({ peer: evt.detail.toString() }, 'peer disconnected')
    })
    this.host.addEventListener('peer:connect', (evt) => {
      this.log.info({ peer: evt.detail.toString() }, 'peer connected')
    })
  }

  role (): string {
    for (const feature of this.features) {
      const role = feature.role?.()
      if (role !== undefined) return role
    }
    return 'sclerotium'
  }

  addrs (): string[] {
    return this.host.getMultiaddrs().map(a => a.toString())
  }

  peers (): PeerView[] {
    // a signed role advertisement is current; the roster's role was announced at connection time
    // the router's own score (the GossipSub interface does not declare it; the class has it)
    const pubsub = this.host.services.pubsub as unknown as { getScore?: (peerId: string) => number }
    return this.members.peers().map(p => {
      const score = pubsub.getScore?.(p.peerId) ?? 0
      return {
        ...p,
        role: this.features.map(f => f.roleOf?.(p.peerId)).find(r => r !== undefined) ?? p.role,
        gossipScore: Math.round(score * 100) / 100,
        gossipIgnored: score < GOSSIP_GRAYLIST_THRESHOLD
      }
    })
  }

  status (): Record<string, unknown> {
    return {
      peerId: this.host.peerId.toString(),
      networkId: this.network.networkId,
      networkName: this.network.name,
      role: this.role(),
      addrs: this.addrs(),
      peers: this.peers(),
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      links: this.linkSummary(),
      apiPort: this.apiPort,
      ...Object.assign({}, ...this.features.map(f => f.status?.() ?? {}))
    }
  }

  /** What `status` shows of the topology: how many members, which links are kept and why. */
  private linkSummary (): Record<string, unknown> | undefined {
    const report = this.members.links()
    if (report === undefined) return undefined
    const kinds: Record<string, number> = {}
    for (const k of report.kept) kinds[k.kind] = (kinds[k.kind] ?? 0) + 1
    return { members: report.members, kept: report.kept.length, keptConnected: report.kept.filter(k => k.connected).length, other: report.other, closed: report.closed, kinds }
  }

  invite (ttlMs: number, uses: number): string {
    const epochAnchor = this.features.map(f => f.epochAnchor?.()).find(a => a !== undefined)
    return createInvite(this.home, { ttlMs, uses, bootstrap: this.inviteAddrs(), ...(epochAnchor === undefined ? {} : { epochAnchor }) })
  }

  /** Addresses a second machine can dial: not the wildcard, loopback only when nothing else. */
  inviteAddrs (): string[] {
    const all = this.addrs().filter(a => !a.includes('/p2p-circuit') && !a.includes('/webrtc'))
    const external = all.filter(a => !a.startsWith('/ip4/127.') && !a.startsWith('/ip6/::1'))
    return (external.length > 0 ? external : all).slice(0, 8)
  }

  private routes (): Routes {
    const body = (b: unknown): Record<string, unknown> => (b !== null && typeof b === 'object' ? b as Record<string, unknown> : {})
    return {
      'GET /status': () => this.status(),
      'GET /peers': () => this.peers(),
      'GET /network': () => ({ networkId: this.network.networkId, name: this.network.name, rootPublicKey: Buffer.from(this.network.rootPublicKey).toString('base64url'), members: [this.host.peerId.toString(), ...this.peers().map(p => p.peerId)] }),
      'GET /rejected': () => this.members.rejected(),
      'POST /invites': ({ body: b }) => {
        const { ttlMs, uses } = body(b)
        if (!Number.isSafeInteger(ttlMs) || (ttlMs as number) <= 0 || !Number.isSafeInteger(uses) || (uses as number) <= 0) throw new ApiError(400, 'ttlMs and uses must be positive integers')
        return { invite: this.invite(ttlMs as number, uses as number) }
      },
      'POST /gossip/subscribe': ({ body: b }) => { this.appTopics.subscribe(body(b).topic as string); return { topics: this.appTopics.topics() } },
      'POST /gossip/publish': async ({ body: b }) => {
        const { topic, message } = body(b)
        if (typeof message !== 'string') throw new ApiError(400, 'message must be a string')
        return { recipients: await this.appTopics.publish(topic as string, message) }
      },
      'GET /gossip/messages': ({ query }) => this.appTopics.messages(query.get('topic') ?? undefined),
      'POST /stop': () => { setImmediate(() => { void this.stop().then(() => process.exit(0)) }); return { stopping: true } },
      'GET /metrics': { text: true, contentType: 'text/plain; version=0.0.4', handler: async () => await this.metrics.registry.metrics() },
      ...Object.assign({}, ...this.features.map(f => f.routes?.(this.context) ?? {}))
    }
  }

  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('shutting down')
      await this.api?.close().catch(() => {})
      for (const feature of [...this.features].reverse()) {
        try {
          await feature.stop?.()
        } catch (err) {
          this.log.warn({ feature: feature.name, err: (err as Error).message }, 'feature did not stop cleanly')
        }
      }
      try {
        await this.host?.stop()
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'libp2p did not stop cleanly')
      }
      await this.members?.detach().catch(() => {})
      this.home.clearDaemonInfo()
      this.log.info('stopped')
    })()
    return await this.stopping
  }
}
