// One simulated node: the real spores (SporeMerger and TierStores over an in-memory level,
// LatentGossip, AntiEntropySync, SelfPublisher) and the real RoleService (policy, signed
// advertisements, RoleView, balancing, hysteresis), wired to the simulated mesh instead of
// libp2p. Only the wiring lives here; the daemon's schedule is kept: own entries read every
// minute (sent when changed, else every 10), a sync with a random neighbour every minute and with each new neighbour, a
// connection record per connect and disconnect.
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { RoleService, type HardwareProfile, type RoleAdvertisement } from '../../../roles/index.ts'
import { Spores, LatentGossip, AntiEntropySync, SelfPublisher, signerOf, type SelfSummary, type Signer } from '../../../spores/index.ts'
import type { Owner, VirtualClock } from './virtual-clock.ts'
import type { GossipMesh, Verdict } from './gossip-mesh.ts'
import type { Mesh } from './mesh.ts'
import { MemoryLevel } from './memory-level.ts'
import type { SimStream } from './sim-stream.ts'

export const NETWORK = 'mycsimulatedscalemodel'
export const ROLES_TOPIC = `mycelium/${NETWORK}/roles/1`
export const LATENT_TOPIC = `mycelium/${NETWORK}/spores/latent/1`
export const SYNC_PROTOCOL = `/mycelium/${NETWORK}/spores/sync/1.0.0`
const PUBLISH_MS = 60_000
const SYNC_MS = 60_000
/** SporesNetwork's: a neighbour that reconnects within this time is not synced with again. */
const MIN_RESYNC_MS = 10_000

/** What a node needs from the simulated world. */
export interface NodeWorld {
  clock: VirtualClock
  mesh: Mesh
  gossip: GossipMesh
  rootPublicKey: Uint8Array
  peerIdOf: (node: number) => string
  peerOf: (node: number) => PeerId
  /** The live node with this peer id. */
  nodeOf: (peerId: string) => number | undefined
  /** Called with the node's role whenever it takes or changes one. */
  roleChanged: (node: number, role: string) => void
  /** Opens a stream to `to`'s handler; resolves once the stream is negotiated. */
  openStream: (from: number, to: number, protocol: string) => Promise<SimStream>
  /** Pure decoding shared by every receiver of one message (see RoleGossipOptions.decode). */
  decodeAdvertisement: (bytes: Uint8Array, topic: string) => RoleAdvertisement
  pick: <T>(items: readonly T[]) => T
  /** In [0, 1), from the run's seed (the roles' jitter) */
  random: () => number
}

class PeerEvents extends EventTarget {}

export class SimNode {
  readonly index: number
  readonly signer: Signer
  readonly owner: Owner = { alive: true }
  readonly startedAt: number
  spores!: Spores
  roles!: RoleService
  private latent!: LatentGossip
  sync!: AntiEntropySync
  private publisher!: SelfPublisher
  private streamHandler?: (stream: SimStream) => void
  private readonly world: NodeWorld
  private readonly events = new PeerEvents()
  private readonly lastSync = new Map<number, number>()
  private readonly profile: HardwareProfile
  readonly openStreams = new Set<SimStream>()

  constructor (world: NodeWorld, index: number, secretKey: Uint8Array, profile: HardwareProfile) {
    this.world = world
    this.index = index
    this.signer = signerOf(secretKey)
    this.profile = profile
    this.startedAt = world.clock.now()
  }

  private peerIds (nodes: Iterable<number>): PeerId[] {
    return [...nodes].map(n => this.world.peerOf(n))
  }

  async start (): Promise<void> {
    const w = this.world
    const clock = w.clock
    const self = this.index
    this.spores = await Spores.open({ database: new MemoryLevel() as any, network: NETWORK, rootPublicKey: w.rootPublicKey, signer: this.signer, clock: () => clock.now() })
    const handlers = new Map<string, (stream: any) => void>()
    const sporeHost = {
      peerId: peerIdFromString(this.signer.peerId),
      handle: async (protocol: string, handler: (stream: any) => void) => { handlers.set(protocol, handler); this.streamHandler = handler },
      unhandle: async (protocol: string) => { handlers.delete(protocol) },
      dialProtocol: async (peer: PeerId, protocol: string) => await w.openStream(self, this.nodeOf(peer), protocol) as any,
      getPeers: () => this.peerIds(w.mesh.neighbours(self))
    }
    const validators = new Map<string, (peer: PeerId, message: { data: Uint8Array }) => Promise<Verdict>>()
    const sporePubsub = {
      subscribe: () => {},
      unsubscribe: () => {},
      publish: async (topic: string, data: Uint8Array) => { w.gossip.publish(self, topic, 'latent', data) },
      topicValidators: validators
    }
    this.latent = new LatentGossip({ pubsub: sporePubsub as any, topic: LATENT_TOPIC, merger: this.spores.merger, log: this.spores.log })
    this.sync = new AntiEntropySync({ host: sporeHost as any, protocol: SYNC_PROTOCOL, store: this.spores.tiers.latent, merger: this.spores.merger, log: this.spores.log })
    this.publisher = new SelfPublisher({ signer: this.signer, summary: () => this.summary(), merger: this.spores.merger, latent: this.spores.tiers.latent, publish: async (e) => { await this.latent.publish(e) }, clock: () => clock.now(), log: this.spores.log, nodeLifetimeMs: this.spores.limits.windowMs })
    this.latent.start()
    await this.sync.start()

    const roleHost = {
      peerId: peerIdFromString(this.signer.peerId),
      getMultiaddrs: () => [{ toString: () => `/ip4/10.${(self >> 16) & 255}.${(self >> 8) & 255}.${self & 255}/tcp/4001` }],
      getConnections: () => [],
      getPeers: () => this.peerIds(w.mesh.neighbours(self)),
      dial: async () => { throw new Error('hyphae anchors are not simulated') },
      addEventListener: this.events.addEventListener.bind(this.events),
      removeEventListener: this.events.removeEventListener.bind(this.events)
    }
    const roleMessages = new PeerEvents()
    const rolePubsub = {
      subscribe: () => {},
      unsubscribe: () => {},
      publish: async (topic: string, data: Uint8Array) => { w.gossip.publish(self, topic, 'roles', data) },
      getSubscribers: () => this.peerIds(w.mesh.neighbours(self)),
      addEventListener: roleMessages.addEventListener.bind(roleMessages),
      removeEventListener: roleMessages.removeEventListener.bind(roleMessages)
    }
    w.gossip.attach(self, {
      receive: async (topic, data, from) => {
        if (topic === ROLES_TOPIC) {
          roleMessages.dispatchEvent(new CustomEvent('message', { detail: { topic, data } }))
          return 'accept'
        }
        const validate = validators.get(topic)
        return validate === undefined ? 'ignore' : await validate(w.peerOf(from), { data })
      }
    })
    this.roles = new RoleService({
      host: roleHost as any,
      pubsub: rolePubsub as any,
      secretKey: this.signer.secretKey,
      topic: ROLES_TOPIC,
      effects: { setRelayServer: () => {}, setDhtMode: () => {} },
      dataDir: '/nonexistent',
      profile: this.profile,
      now: () => clock.now(),
      timers: clock.timersFor(this.owner),
      decodeAdvertisement: w.decodeAdvertisement,
      random: w.random,
      onChange: (status) => { w.roleChanged(self, status.role) }
    })
    await this.roles.start()
    w.roleChanged(self, this.roles.status().role)
    clock.after(0, () => { void this.publisher.publishNow() }, this.owner)
    const syncTick = (): void => {
      clock.after(SYNC_MS, syncTick, this.owner)
      const around = [...w.mesh.neighbours(self)]
      if (around.length > 0) void this.reconcile(w.pick(around))
    }
    clock.after(SYNC_MS, syncTick, this.owner)
    const publishTick = (): void => {
      clock.after(PUBLISH_MS, publishTick, this.owner)
      void this.publisher.publishDue()
    }
    clock.after(PUBLISH_MS, publishTick, this.owner)
  }

  private nodeOf (peer: PeerId): number {
    const n = this.world.nodeOf(peer.toString())
    if (n === undefined) throw new Error(`${peer.toString()} is not reachable`)
    return n
  }

  /** An inbound stream for this node's sync handler. */
  accept (stream: SimStream): void {
    this.streamHandler?.(stream)
  }

  private summary (): SelfSummary {
    const now = this.world.clock.now()
    const role = this.roles?.status().role ?? 'rhizomorph'
    return {
      node: { addrs: [`/ip4/10.0.0.1/tcp/4001`], role, hardware: { cores: 4, memMiB: 4096, arch: 'arm64', os: 'linux' } },
      health: { status: 'ok', load: 0.2, memFreeMiB: 2048, diskFreeGiB: 32 },
      uptime: { since: this.startedAt, uptimeS: Math.floor((now - this.startedAt) / 1000) }
    }
  }

  async reconcile (peer: number): Promise<void> {
    try {
      await this.sync.syncWith(this.world.peerOf(peer))
    } catch {}
  }

  /** The daemon's peerConnected: a connection record, then a sync unless synced lately. */
  connected (peer: number): void {
    if (!this.owner.alive) return
    this.events.dispatchEvent(new CustomEvent('peer:connect', { detail: this.world.peerOf(peer) }))
    void this.publisher.recordConnection(this.world.peerIdOf(peer), 'connect').catch(() => {})
    const now = this.world.clock.now()
    if (now - (this.lastSync.get(peer) ?? -Infinity) < MIN_RESYNC_MS) return
    this.lastSync.set(peer, now)
    void this.reconcile(peer)
  }

  disconnected (peer: number): void {
    if (!this.owner.alive) return
    this.events.dispatchEvent(new CustomEvent('peer:disconnect', { detail: this.world.peerOf(peer) }))
    void this.publisher.recordConnection(this.world.peerIdOf(peer), 'disconnect').catch(() => {})
  }

  /** Stops everything this node runs; its timers die with its owner. */
  async stop (): Promise<void> {
    this.owner.alive = false
    this.world.gossip.detach(this.index)
    for (const s of this.openStreams) s.reset(new Error('node stopped'))
    await this.roles.stop()
    this.latent.stop()
  }
}
