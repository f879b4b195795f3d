// The model: N simulated nodes (sim-node.ts) on one virtual clock, joining over the first
// seconds, then churning (each node's session is exponential with the given mean; half of
// the departures are clean, half crashes noticed only after a detection delay; a newcomer
// replaces each). Sclerotia are crashed on purpose to time their replacement, and probe
// entries are published to time their convergence. Every random choice comes from one seed.
import { getHeapStatistics } from 'node:v8'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { Prng } from '../../../consensus/sim/index.ts'
import { getPublicKey } from '../../../crypto/index.ts'
import { decodeRoleAdvertisement, sclerotiumTarget, type HardwareProfile, type RoleAdvertisement } from '../../../roles/index.ts'
import { signEntry } from '../../../spores/index.ts'
import { VirtualClock } from './virtual-clock.ts'
import { Links, DEFAULT_LINKS, type LinkModel } from './links.ts'
import { Mesh, GOSSIPSUB_MESH } from './mesh.ts'
import { GossipMesh } from './gossip-mesh.ts'
import { Traffic } from './traffic.ts'
import { streamPair, type SimStream } from './sim-stream.ts'
import { SimNode, LATENT_TOPIC, type NodeWorld } from './sim-node.ts'
import { measure, type ScaleReport } from './report.ts'

export interface ScaleOptions {
  nodes: number
  /** Virtual seconds to simulate. */
  seconds: number
  seed: number
  /** Mean session of a node, minutes (exponential). */
  sessionMinutes?: number
  links?: LinkModel
  /** Stop early (reported) when the run takes longer than this, wall-clock. */
  budgetMs?: number
  /** Called every 10 virtual seconds (the CLI prints it). */
  onProgress?: (p: { simulatedS: number, live: number, sclerotia: number, heapMiB: number, wallS: number }) => void
}

/** Virtual time starts here (a date in 2027), so entries carry realistic timestamps. */
const EPOCH = 1_800_000_000_000
const JOIN_SPREAD_MS = 10_000
/** Traffic is measured after this: the join burst is over, the roles have settled. */
export const WARMUP_MS = 60_000
const SCLEROTIUM_KILL_EVERY_MS = 45_000
const PROBE_EVERY_MS = 15_000
/** A crashed host's connections are noticed when keep-alives fail: 5–30 s. */
const CRASH_NOTICE_MS: [number, number] = [5_000, 30_000]

const PROFILES = ['server-kvm', 'raspberry-pi-4', 'laptop-mains'] as const
const UPLINK_MBPS = { 'server-kvm': 900, 'raspberry-pi-4': 300, 'laptop-mains': 200 }

export interface ModelState {
  clock: VirtualClock
  nodes: Map<number, SimNode>
  roles: Map<number, string>
  roleChanges: Array<{ at: number, node: number, role: string }>
  kills: Array<{ at: number, node: number }>
  probes: Array<{ at: number, id: string, targets: Set<number>, reached: Map<number, number> }>
  samples: Array<{ at: number, live: number, sclerotia: number, target: number }>
  churn: { joins: number, leaves: number, crashes: number }
  traffic: Traffic
  wallMs: number
  completedMs: number
  heapMiB: number
  stopped?: string
  meanDegree: number
  /** Latent entries a live node holds at the end (mean): every node keeps the whole tier. */
  latentPerNode: number
}

export async function runScaleModel (options: ScaleOptions): Promise<ScaleReport> {
  const t0 = performance.now()
  const rng = new Prng(options.seed)
  const clock = new VirtualClock(EPOCH)
  const links = new Links(rng.fork(), options.links ?? DEFAULT_LINKS)
  const traffic = new Traffic()
  const nodes = new Map<number, SimNode>()
  const peerIds: string[] = []
  const peers: PeerId[] = []
  const byPeerId = new Map<string, number>()
  const choice = rng.fork()
  const state: ModelState = { clock, nodes, roles: new Map(), roleChanges: [], kills: [], probes: [], samples: [], churn: { joins: 0, leaves: 0, crashes: 0 }, traffic, wallMs: 0, completedMs: 0, heapMiB: 0, meanDegree: 0, latentPerNode: 0 }
  const mesh = new Mesh(clock, rng.fork(), GOSSIPSUB_MESH, {
    connected: (a, b) => {
      // both ends see the connection once it is up (one round trip)
      clock.after(links.delay(a, b, 100) * 2, () => {
        if (!mesh.linked(a, b)) return
        nodes.get(a)?.connected(b)
        nodes.get(b)?.connected(a)
      })
    },
    disconnected: (a, b) => { nodes.get(a)?.disconnected(b) }
  })
  const gossip = new GossipMesh(clock, links, mesh, traffic)
  const decoded = new WeakMap<Uint8Array, RoleAdvertisement | Error>()
  const wire = { clock, links, traffic }
  const world: NodeWorld = {
    clock,
    mesh,
    gossip,
    rootPublicKey: getPublicKey(rng.bytes(32)),
    peerIdOf: (n) => peerIds[n],
    peerOf: (n) => peers[n],
    nodeOf: (id) => { const n = byPeerId.get(id); return n !== undefined && mesh.isLive(n) ? n : undefined },
    roleChanged: (node, role) => {
      if (state.roles.get(node) !== role) state.roleChanges.push({ at: clock.now(), node, role })
      state.roles.set(node, role)
    },
    decodeAdvertisement: (bytes, topic) => {
      let d = decoded.get(bytes)
      if (d === undefined) {
        try { d = decodeRoleAdvertisement(bytes, topic) } catch (err) { d = err as Error }
        decoded.set(bytes, d)
      }
      if (d instanceof Error) throw d
      return d
    },
    openStream: async (from, to, protocol) => {
      if (!mesh.linked(from, to)) throw new Error('not connected')
      const [out, inbound] = streamPair(wire, from, to, protocol)
      const a = nodes.get(from) as SimNode
      const b = nodes.get(to)
      if (b === undefined) throw new Error('not connected')
      a.openStreams.add(out)
      b.openStreams.add(inbound)
      out.onEnd = () => a.openStreams.delete(out)
      inbound.onEnd = () => b.openStreams.delete(inbound)
      // protocol negotiation takes a round trip
      const oneWay = links.delay(from, to, 64)
      await new Promise<void>(resolve => clock.after(2 * oneWay, resolve))
      if (!b.owner.alive) { out.reset(new Error('remote gone')); throw new Error('remote gone') }
      b.accept(inbound)
      return out
    },
    pick: (items) => choice.pick(items),
    random: () => choice.float()
  }

  const watch = (index: number, node: SimNode): void => {
    node.spores.merger.onMerged((_tier, entries) => {
      for (const e of entries) {
        if (e.type !== 'service') continue
        const id = `service/${e.key}`
        const p = state.probes.find(x => x.id === id)
        if (p !== undefined && !p.reached.has(index)) p.reached.set(index, clock.now() - p.at)
      }
    })
  }

  let nextIndex = 0
  const spawn = async (): Promise<void> => {
    const index = nextIndex++
    const secretKey = rng.bytes(32)
    const base = rng.pick(PROFILES)
    const profile: HardwareProfile = { name: `sim-${base}`, base, hardware: { cpu: { loadPercent: rng.int(2, 70) } }, network: {} }
    links.place(index, UPLINK_MBPS[base])
    const node = new SimNode(world, index, secretKey, profile)
    peerIds[index] = node.signer.peerId
    peers[index] = peerIdFromString(node.signer.peerId)
    byPeerId.set(node.signer.peerId, index)
    nodes.set(index, node)
    await node.start()
    watch(index, node)
    mesh.join(index)
  }

  const remove = (index: number, crash: boolean): void => {
    const node = nodes.get(index)
    if (node === undefined) return
    nodes.delete(index)
    state.roles.delete(index)
    const notice = (): number => crash ? rng.int(...CRASH_NOTICE_MS) : links.delay(index, index, 0)
    for (const s of node.openStreams) {
      const peer = s.peer
      clock.after(notice(), () => peer?.reset(new Error('connection lost')))
    }
    mesh.leave(index, notice)
    void node.stop()
  }

  for (let i = 0; i < options.nodes; i++) clock.at(EPOCH + rng.int(0, JOIN_SPREAD_MS), () => { void spawn() })

  // churn: departures at rate N / mean session, each replaced by a newcomer
  const sessionMs = (options.sessionMinutes ?? 60) * 60_000
  const churnRng = rng.fork()
  const nextDeparture = (): void => {
    const wait = Math.max(1, Math.round(-Math.log(1 - churnRng.float()) * sessionMs / options.nodes))
    clock.after(wait, () => {
      nextDeparture()
      const victim = mesh.randomLive()
      if (victim === undefined) return
      const crash = churnRng.chance(0.5)
      if (crash) state.churn.crashes++
      else state.churn.leaves++
      remove(victim, crash)
      clock.after(churnRng.int(1_000, 30_000), () => { state.churn.joins++; void spawn() })
    })
  }
  clock.at(EPOCH + JOIN_SPREAD_MS, nextDeparture)

  // a sclerotium crashes now and then: how long until another node is promoted?
  const killRng = rng.fork()
  for (let at = EPOCH + WARMUP_MS; at < EPOCH + options.seconds * 1000 - 30_000; at += SCLEROTIUM_KILL_EVERY_MS) {
    clock.at(at, () => {
      const sclerotia = [...state.roles].filter(([n, r]) => r === 'sclerotium' && mesh.isLive(n)).map(([n]) => n)
      if (sclerotia.length === 0) return
      const victim = killRng.pick(sclerotia)
      state.kills.push({ at: clock.now(), node: victim })
      state.churn.crashes++
      remove(victim, true)
      clock.after(killRng.int(1_000, 30_000), () => { state.churn.joins++; void spawn() })
    })
  }

  // probe entries: a service record published by a random node, timed to every live node
  const probeRng = rng.fork()
  let probeCount = 0
  for (let at = EPOCH + WARMUP_MS / 2; at < EPOCH + options.seconds * 1000 - 20_000; at += PROBE_EVERY_MS) {
    clock.at(at, () => {
      const origin = mesh.randomLive()
      const node = origin === undefined ? undefined : nodes.get(origin)
      if (node === undefined) return
      const name = `probe-${probeCount++}`
      const now = clock.now()
      const entry = signEntry(node.signer, { type: 'service', key: `${node.signer.peerId}/${name}`, value: { name, endpoints: [`/ip4/10.0.0.${probeRng.int(1, 254)}/tcp/80`] }, seq: now, issuedAt: now })
      const probe = { at: now, id: `service/${entry.key}`, targets: new Set(mesh.liveNodes()), reached: new Map<number, number>() }
      state.probes.push(probe)
      // as `spores publish-service` does: merged locally, then gossiped
      void node.spores.merger.merge('latent', [entry]).then(() => {
        if (node.owner.alive) gossip.publish(node.index, LATENT_TOPIC, 'latent', entry.bytes)
      })
    })
  }

  const end = EPOCH + options.seconds * 1000
  const budget = options.budgetMs ?? Infinity
  // stop cleanly, with a reason, before the process would run out of heap or time
  const heapLimit = 0.85 * getHeapStatistics().heap_size_limit
  let checks = 0
  const over = (): boolean => {
    if (++checks % 8 !== 0) return state.stopped !== undefined
    const used = getHeapStatistics().used_heap_size
    state.heapMiB = Math.max(state.heapMiB, used / 2 ** 20)
    if (used > heapLimit) state.stopped = `the heap reached 85 % of its limit (${(heapLimit / 0.85 / 2 ** 30).toFixed(1)} GiB)`
    else if (performance.now() - t0 > budget) state.stopped = `the wall-clock budget (${(budget / 60_000).toFixed(0)} min) ran out`
    return state.stopped !== undefined
  }
  for (let t = EPOCH; t < end && state.stopped === undefined;) {
    t = Math.min(end, t + 1000)
    await clock.runUntil(t, over)
    if (state.stopped !== undefined) {
      state.completedMs = Math.floor((clock.now() - EPOCH) / 1000) * 1000
      break
    }
    const live = mesh.liveNodes().length
    const sclerotia = mesh.liveNodes().filter(n => state.roles.get(n) === 'sclerotium').length
    state.samples.push({ at: t - EPOCH, live, sclerotia, target: sclerotiumTarget(live) })
    if (t - EPOCH > WARMUP_MS) {
      traffic.measuring = true
      traffic.nodeMs += live * 1000
    }
    state.completedMs = t - EPOCH
    state.heapMiB = Math.max(state.heapMiB, process.memoryUsage().heapUsed / 2 ** 20)
    if ((t - EPOCH) % 10_000 === 0) options.onProgress?.({ simulatedS: (t - EPOCH) / 1000, live, sclerotia, heapMiB: process.memoryUsage().heapUsed / 2 ** 20, wallS: (performance.now() - t0) / 1000 })
  }
  state.wallMs = performance.now() - t0
  state.meanDegree = mesh.meanDegree()
  const held = [...nodes.values()].filter(n => n.spores !== undefined).map(n => n.spores.tiers.latent.size)
  state.latentPerNode = held.length === 0 ? 0 : held.reduce((a, b) => a + b, 0) / held.length
  for (const n of [...nodes.values()]) { n.owner.alive = false }
  return measure(options, state)
}
