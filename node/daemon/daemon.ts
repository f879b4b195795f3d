// The daemon: one libp2p host of one network, its admin API, and the bookkeeping that lets
// an operator see and steer it. Everything is assembled here; the parts do not know each other.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import { Home, HomeError, randomApiToken, type NetworkInfo } from '../home/index.ts'
import { createNetwork, createInvite, admitter } from '../network/index.ts'
import { protocolPrefix, type CertificateChain, type MembershipPolicy } from '../../membership/index.ts'
import { createHost, type MyceliumHost } from '../host/index.ts'
import { AdminApi, ApiError, type Routes } from '../api/index.ts'
import { NodeMetrics } from '../metrics/index.ts'
import { Roster, type RosterEntry, type Presence } from '../../membership/index.ts'
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
}

export interface RejectedConnection {
  peerId: string
  reason: string
  at: number
}

const REJECTIONS_KEPT = 100
const RECONNECT_INTERVAL_MS = 5_000

function rejectionKind (reason: string): string {
  if (/belongs to network|noise-membership|protocol selection failed/i.test(reason)) return 'other-network'
  if (/expired/i.test(reason)) return 'expired'
  if (/revoked/i.test(reason)) return 'revoked'
  if (/invite|admission|admit/i.test(reason)) return 'admission'
  if (/abort|timeout|timed out/i.test(reason)) return 'timeout'
  return 'invalid'
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
  private roster!: Roster
  private appTopics!: AppTopics
  private chain!: CertificateChain
  private readonly verified = new Map<string, number>()
  private readonly presence = new Map<string, Presence>()
  private readonly knownPeers = new Map<string, string[]>()
  private readonly rejected: RejectedConnection[] = []
  private reconnectTimer?: NodeJS.Timeout
  private saveKnownTimer?: NodeJS.Timeout
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
      isVerified: (peerId: string) => this.verified.has(peerId)
    }

    this.api = new AdminApi(this.routes(), token)
    this.apiPort = await this.api.listen(this.config.apiPort)
    const apiSocket = await this.api.listenSocket(this.home.apiSocketPath()) ? this.home.apiSocketPath() : undefined

    for (const [peerId, addrs] of Object.entries(this.home.loadKnownPeers())) this.knownPeers.set(peerId, addrs)
    const bootstrap = [...new Set([...this.config.bootstrap, ...this.home.loadBootstrap()])]
    try {
      this.host = await createHost({
        privateKey,
        networkId: network.networkId,
        listen: this.config.listen,
        bootstrap: bootstrap.filter(a => a.includes('/p2p/')),
        membership: this.membershipPolicy(),
        isVerified: (peer: PeerId) => this.verified.has(peer.toString()),
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

    this.appTopics = new AppTopics(this.host.services.pubsub, network.networkId, this.metrics)
    this.roster = new Roster({
      libp2p: this.host,
      protocol: `${protocolPrefix(network.networkId)}/roster/1.0.0`,
      presence: () => ({ role: this.role(), addrs: this.addrs() }),
      connectedMembers: () => this.peers(),
      onPresence: (peerId, presence) => { this.presence.set(peerId, presence); this.remember(peerId, presence.addrs) },
      onLearned: (entries) => { this.learn(entries) },
      log: this.log
    })
    await this.roster.start()
    this.watchConnections()
    for (const feature of this.features) {
      await feature.start?.(this.context)
      this.log.debug({ feature: feature.name }, 'feature started')
    }
    if (this.home.loadApiToken() === undefined) this.home.saveApiToken(token)
    this.home.saveDaemonInfo({ pid: process.pid, apiPort: this.apiPort, startedAt: this.startedAt, ...(apiSocket === undefined ? {} : { apiSocket }) })
    this.reconnectTimer = setInterval(() => { void this.reconnect(bootstrap) }, RECONNECT_INTERVAL_MS)
    this.reconnectTimer.unref()
    void this.reconnect(bootstrap)
  }

  private membershipPolicy (): MembershipPolicy {
    const network = this.network
    return {
      networkId: network.networkId,
      rootPublicKey: network.rootPublicKey,
      credentials: () => ({ kind: 'member', chain: this.chain }),
      isRevoked: (peerId: string) => this.isRevoked(peerId),
      now: () => Date.now(),
      admit: admitter(this.home, network, () => Date.now()),
      onVerified: (peerId) => {
        this.verified.set(peerId, Date.now())
      },
      onRejected: (peerId, reason) => {
        const kind = rejectionKind(reason)
        this.metrics.rejectedConnections.inc({ reason: kind })
        this.rejected.push({ peerId, reason, at: Date.now() })
        if (this.rejected.length > REJECTIONS_KEPT) this.rejected.shift()
        this.log.warn({ peer: peerId, reason }, 'refused a connection that failed the membership handshake')
      }
    }
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
    this.host.addEventListener('connection:open', (evt) => {
      update()
      const peer = evt.detail.remotePeer
      // the first connection to a member starts a roster exchange
      if (this.host.getConnections(peer).length === 1) void this.roster.exchange(peer)
    })
    this.host.addEventListener('connection:close', update)
    this.host.addEventListener('peer:disconnect', (evt) => {
      this.log.info({ peer: evt.detail.toString() }, 'peer disconnected')
    })
    this.host.addEventListener('peer:connect', (evt) => {
      this.log.info({ peer: evt.detail.toString() }, 'peer connected')
    })
  }

  private remember (peerId: string, addrs: string[]): void {
    if (peerId === this.host.peerId.toString() || addrs.length === 0) return
    this.knownPeers.set(peerId, addrs)
    if (this.saveKnownTimer !== undefined) return
    this.saveKnownTimer = setTimeout(() => {
      this.saveKnownTimer = undefined
      try {
        this.home.saveKnownPeers(Object.fromEntries(this.knownPeers))
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not save known peers')
      }
    }, 1_000)
  }

  private learn (entries: RosterEntry[]): void {
    const self = this.host.peerId.toString()
    for (const entry of entries) {
      if (entry.peerId === self || entry.addrs.length === 0) continue
      this.remember(entry.peerId, entry.addrs)
      if (this.host.getConnections(peerIdFromString(entry.peerId)).length > 0) continue
      void this.dialMember(entry.peerId, entry.addrs)
    }
  }

  private async dialMember (peerId: string, addrs: string[]): Promise<void> {
    try {
      const id = peerIdFromString(peerId)
      await this.host.peerStore.merge(id, { multiaddrs: addrs.map(a => multiaddr(a)) })
      await this.host.dial(id, { signal: AbortSignal.timeout(10_000) })
    } catch (err) {
      this.log.debug({ peer: peerId, err: (err as Error).message }, 'could not dial member')
    }
  }

  /** Rejoin after restarts and partitions: dial bootstrap peers and remembered members while alone. */
  private async reconnect (bootstrap: string[]): Promise<void> {
    if (this.stopping !== undefined) return
    const peers = this.host.getPeers()
    if (peers.length > 0) {
      // a dial to a member learned from a roster can fail (busy peer, lost packet): remembered
      // nodes with a direct address that are not connected are dialled again. Browser pages
      // (relay and WebRTC addresses only) dial in themselves and are left alone.
      const connected = new Set(peers.map(p => p.toString()))
      const missing = [...this.knownPeers].filter(([peerId, addrs]) => !connected.has(peerId) && addrs.some(a => !a.includes('/p2p-circuit') && !a.includes('/webrtc')))
      await Promise.all(missing.slice(0, 16).map(async ([peerId, addrs]) => { await this.dialMember(peerId, addrs.filter(a => !a.includes('/p2p-circuit') && !a.includes('/webrtc'))) }))
      return
    }
    const dials: Array<Promise<unknown>> = []
    for (const addr of bootstrap) {
      dials.push(this.host.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) }).catch(() => {}))
    }
    for (const [peerId, addrs] of this.knownPeers) dials.push(this.dialMember(peerId, addrs))
    await Promise.all(dials)
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
    const out: PeerView[] = []
    for (const peer of this.host.getPeers()) {
      const id = peer.toString()
      if (!this.verified.has(id)) continue
      const presence = this.presence.get(id)
      const addrs = presence?.addrs ?? this.host.getConnections(peer).map(c => c.remoteAddr.toString())
      // a signed role advertisement is current; the roster's role was announced at connection time
      const advertised = this.features.map(f => f.roleOf?.(id)).find(r => r !== undefined)
      out.push({ peerId: id, addrs, role: advertised ?? presence?.role ?? 'unknown' })
    }
    return out
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
      apiPort: this.apiPort,
      ...Object.assign({}, ...this.features.map(f => f.status?.() ?? {}))
    }
  }

  invite (ttlMs: number, uses: number): string {
    return createInvite(this.home, { ttlMs, uses, bootstrap: this.inviteAddrs() })
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
      'GET /rejected': () => [...this.rejected],
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
      clearInterval(this.reconnectTimer)
      clearTimeout(this.saveKnownTimer)
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
      try { this.home.saveKnownPeers(Object.fromEntries(this.knownPeers)) } catch {}
      this.home.clearDaemonInfo()
      this.log.info('stopped')
    })()
    return await this.stopping
  }
}
