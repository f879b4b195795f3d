// In-process clusters for the consensus tests and the bench: real libp2p nodes (TCP on
// 127.0.0.1, noise, yamux, identify, gossipsub, and the daemon's direct round streams), each with its own level-backed spores whose
// primary tier checks BFT epoch certificates, and a connection gater to cut the network.
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { buildHeader, certifyEpoch, signEntry, committeeCertificateVerifier, encodeEpoch, retainedHeadersOf, type Spores, type Signer, type SignedEntry } from '../../spores/index.ts'
import { createConsensus, HonestConduct, gossipsubTransport, bftEpochVerifier, consensusTopics, minimumCommittee, EXCLUDING_FAULTS, type Consensus, type MemberConduct, type GossipsubLike } from '../../consensus/index.ts'
import { directLinks, type DirectLinks } from '../../node/consensus/direct-links.ts'
import { catchUpStream, type CatchUpStream } from '../../node/consensus/catch-up-stream.ts'
import { networkRoot, tempDir, openTestSpores, NETWORK, nodeValue, healthValue, entry } from '../spores/fixtures.ts'

export const TOPIC_PREFIX = `mycelium/${NETWORK}`
export const CATCH_UP_PROTOCOL = '/mycelium/test/bft/catch-up/1.0.0'

export interface ClusterNode {
  index: number
  signer: Signer
  libp2p: Libp2p<{ pubsub: any, identify: any }>
  spores: Spores
  consensus: Consensus
  /** Peers this node refuses connections with (the partition). */
  blocked: Set<string>
  /** Swap the member's conduct at run time (Byzantine phases). */
  conduct: { make: () => MemberConduct | undefined }
  stopped: boolean
  /** The catch-up stream: members behind ask one member at a time for the epochs they lack. */
  catchUp: CatchUpStream
  links: DirectLinks
  /** What this member answers to a catch-up request (a test swaps in a liar). */
  answerCatchUp: (request: Uint8Array) => Uint8Array | Promise<Uint8Array>
  /** The members this one asks first when behind (shuffled among themselves). */
  catchUpPreferred: () => string[]
}

export interface ClusterOptions {
  size: number
  f: number
  committeeSize?: number
  intervalMs?: number
  conducts?: Record<number, () => MemberConduct>
  proposalWaitMs?: number
  minPhaseMs?: number
  maxAttempts?: number
  /** The first attempt's length on an epoch (default 600 ms). */
  slotMs?: number
  /** Entries the first epoch already holds (a primary spore of some size). */
  genesisEntries?: SignedEntry[]
  /** Newest epochs each member holds in memory and serves whole (default 64). */
  recentEpochs?: number
  /** Epochs whose certified headers each member's primary tier keeps (default a week's). */
  headerRetention?: number
}

export interface Cluster {
  nodes: ClusterNode[]
  ids: string[]
  genesisDigest: Uint8Array
  live: () => ClusterNode[]
  stopNode: (node: ClusterNode) => Promise<void>
  partition: (a: ClusterNode[], b: ClusterNode[]) => Promise<void>
  heal: () => Promise<void>
  /** Stops a member's BFT process (engine, round links, catch-up stream); its spores and libp2p node stay. */
  stopMember: (node: ClusterNode) => Promise<void>
  /** Starts a stopped member's BFT process again, anchored on what its primary tier holds. */
  startMember: (node: ClusterNode) => Promise<void>
  /** Dials again any pair whose connection dropped (a daemon's reconnection does this). */
  reconnect: () => Promise<void>
  close: () => Promise<void>
}

async function identityNode (blocked: Set<string>): Promise<{ libp2p: ClusterNode['libp2p'], signer: Signer }> {
  const privateKey = await generateKeyPair('Ed25519')
  const deny = async (peer: PeerId): Promise<boolean> => blocked.has(peer.toString())
  const libp2p = await createLibp2p({
    privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      denyDialMultiaddr: async () => false,
      denyDialPeer: deny,
      denyInboundEncryptedConnection: deny,
      denyOutboundEncryptedConnection: deny
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false } as any)
    }
  })
  const signer = { peerId: libp2p.peerId.toString(), secretKey: privateKey.raw.slice(0, 32) }
  return { libp2p: libp2p as ClusterNode['libp2p'], signer }
}

function connectedTo (libp2p: Libp2p): (peer: string) => boolean {
  return (peer) => libp2p.getConnections().some(c => c.status === 'open' && c.remotePeer.toString() === peer)
}

/**
 * Polls `check` every `stepMs` until it holds. The timeout only bounds a failure (a busy 2-core
 * machine may be many times slower than an idle one): it is never a statement about speed.
 */
export async function until (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000, stepMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, stepMs))
  }
  throw new Error(`timed out waiting for ${what}`)
}

async function connectAll (nodes: ClusterNode[]): Promise<void> {
  // Many simultaneous dials on loopback occasionally see a reset; a few passes connect every pair.
  for (let pass = 0; pass < 5; pass++) {
    const dials: Array<Promise<unknown>> = []
    for (let i = 0; i < nodes.length; i++) {
      for (let j = i + 1; j < nodes.length; j++) {
        if (nodes[i].blocked.has(nodes[j].signer.peerId)) continue
        if (connectedTo(nodes[i].libp2p)(nodes[j].signer.peerId)) continue
        dials.push(nodes[i].libp2p.dial(nodes[j].libp2p.getMultiaddrs()).catch(() => undefined))
      }
    }
    if (dials.length === 0) return
    await Promise.all(dials)
  }
}

async function meshReady (nodes: ClusterNode[], withEpochs: boolean): Promise<void> {
  const topics = consensusTopics(TOPIC_PREFIX)
  let last = 0
  await until('gossip subscriptions', async () => {
    // A connection lost to a reset during start-up is dialled again.
    if (Date.now() - last > 1000) {
      last = Date.now()
      await connectAll(nodes)
    }
    return nodes.every(n => {
    const peers = nodes.filter(m => m !== n && !n.blocked.has(m.signer.peerId)).map(m => m.signer.peerId)
    const subs = new Set((n.libp2p.services.pubsub.getSubscribers(topics.rounds) as PeerId[]).map(String))
    const epochSubs = new Set((n.libp2p.services.pubsub.getSubscribers(topics.epochs) as PeerId[]).map(String))
    return peers.every(p => subs.has(p) && (!withEpochs || epochSubs.has(p)))
    })
  })
}

export async function startCluster (options: ClusterOptions): Promise<Cluster> {
  const dir = await tempDir('consensus-')
  const root = networkRoot()
  const nodes: ClusterNode[] = []
  for (let i = 0; i < options.size; i++) {
    const blocked = new Set<string>()
    const { libp2p, signer } = await identityNode(blocked)
    const verifier = bftEpochVerifier({ f: options.f, committeeSize: options.committeeSize, genesis: committeeCertificateVerifier({ rootPublicKey: root.publicKey }) })
    const spores = await openTestSpores(`${dir.path}/n${i}`, root, signer, { epochVerifier: verifier, limits: { minCandidates: minimumCommittee(options.f) }, headerRetention: options.headerRetention })
    const n: ClusterNode = { index: i, signer, libp2p, spores, blocked, conduct: { make: () => options.conducts?.[i]?.() }, stopped: false, consensus: undefined as unknown as Consensus, catchUp: undefined as unknown as CatchUpStream, links: undefined as unknown as DirectLinks, answerCatchUp: async (request) => await n.consensus.epochs.serve(request), catchUpPreferred: () => ids }
    nodes.push(n)
  }
  const ids = nodes.map(n => n.signer.peerId)
  const intervalMs = options.intervalMs ?? 500
  const genesis = buildHeader({ network: NETWORK, epoch: 0, prev: null, entries: options.genesisEntries ?? [], committee: ids, issuedAt: Date.now() - intervalMs })
  const genesisCertificate = certifyEpoch(genesis.digest, [root.signer])
  for (const n of nodes) {
    await n.spores.primary.accept(encodeEpoch(genesis.headerBytes, genesisCertificate, genesis.entries))
    // Each node's own entries sit in its latent tier; a proposer puts what it holds in the epoch.
    await n.spores.merge('latent', [entry(n.signer, 'node', nodeValue(n.index)), entry(n.signer, 'health', healthValue())])
  }
  // One member's BFT process (round links, catch-up stream, engine) over its stored spores:
  // built at start, and again when a stopped member starts (restartMember).
  const member = async (n: ClusterNode): Promise<void> => {
    const isConnected = connectedTo(n.libp2p)
    const anchor = await n.spores.epochInput.anchor()
    // Round messages go as in the daemon: direct streams to connected members, gossip for the rest.
    const links = directLinks({ host: n.libp2p, gossip: gossipsubTransport(n.libp2p.services.pubsub as GossipsubLike), protocol: '/mycelium/test/bft/direct/1.0.0', directTopic: consensusTopics(TOPIC_PREFIX).rounds, accepts: (peer) => ids.includes(peer), targets: () => ids })
    await links.start()
    n.links = links
    n.catchUp = catchUpStream({ host: n.libp2p, protocol: CATCH_UP_PROTOCOL, accepts: (peer) => ids.includes(peer), answer: () => (request) => n.answerCatchUp(request), preferred: () => n.catchUpPreferred() })
    await n.catchUp.start()
    n.consensus = createConsensus({
      signer: n.signer,
      pubsub: links,
      topicPrefix: TOPIC_PREFIX,
      f: options.f,
      committeeSize: options.committeeSize,
      deadlines: { minMs: options.minPhaseMs ?? 250 },
      proposalWaitMs: options.proposalWaitMs ?? 500,
      conduct: () => n.conduct.make() ?? new HonestConduct(),
      isConnected,
      isDown: async (peer) => !isConnected(peer),
      epochs: {
        source: n.spores.epochInput,
        sink: n.spores.epochInput,
        anchor: anchor!,
        intervalMs,
        tickMs: 50,
        slotMs: options.slotMs ?? 600,
        maxAttempts: options.maxAttempts ?? 4,
        catchUp: n.catchUp,
        headers: retainedHeadersOf(n.spores.primary),
        recentEpochs: options.recentEpochs
      }
    })
    // As the daemon does (node/consensus/trust-entries.ts, exclusion-entries.ts): a slash becomes
    // a trust entry in the slasher's latent tier, and an excluding fault an exclusion entry with
    // its evidence, which its next proposal carries into an epoch.
    n.consensus.engine.ledger.onSlash((accused, slash) => {
      const now = Date.now()
      const trust = signEntry(n.signer, { type: 'trust', key: accused, value: { score: n.consensus.engine.ledger.trust(accused), reason: `slashed for ${slash.reason}` }, seq: now, issuedAt: now })
      const evidence = n.consensus.engine.evidence(slash.evidenceId)
      const exclusion = EXCLUDING_FAULTS.has(slash.reason) && evidence !== undefined ? [signEntry(n.signer, { type: 'exclusion', key: accused, value: { evidence }, seq: 1, issuedAt: now })] : []
      void n.spores.merge('latent', [trust, ...exclusion]).catch(() => undefined)
    })
  }
  for (const n of nodes) await member(n)
  for (const n of nodes) n.consensus.engine.start()
  await connectAll(nodes)
  await meshReady(nodes, false)
  for (const n of nodes) n.consensus.epochs.start()
  await meshReady(nodes, true)

  const live = (): ClusterNode[] => nodes.filter(n => !n.stopped)
  const stopNode = async (n: ClusterNode): Promise<void> => {
    if (n.stopped) return
    n.stopped = true
    // As a crash: the connections go first.
    await n.libp2p.stop()
    await n.consensus.stop()
  }
  return {
    nodes,
    ids,
    genesisDigest: genesis.digest,
    live,
    stopNode,
    async partition (a, b) {
      for (const x of a) for (const y of b) {
        x.blocked.add(y.signer.peerId)
        y.blocked.add(x.signer.peerId)
      }
      await Promise.all(a.flatMap(x => b.map(async y => await x.libp2p.hangUp(y.libp2p.peerId).catch(() => undefined))))
      await until('partition', () => a.every(x => b.every(y => !connectedTo(x.libp2p)(y.signer.peerId) && !connectedTo(y.libp2p)(x.signer.peerId))))
    },
    async stopMember (n) {
      await n.consensus.stop()
      await n.links.stop()
      await n.catchUp.stop()
    },
    async startMember (n) {
      await member(n)
      n.consensus.start()
    },
    async reconnect () {
      await connectAll(live())
    },
    async heal () {
      for (const n of nodes) n.blocked.clear()
      await connectAll(live())
      await meshReady(live(), true)
    },
    async close () {
      for (const n of nodes) {
        if (!n.stopped) {
          n.stopped = true
          await n.consensus.stop()
          await n.libp2p.stop()
        }
        await n.spores.close()
      }
      await dir.remove()
    }
  }
}

/** Latest certified epoch number of a node. */
export function latestEpoch (n: ClusterNode): number {
  return n.consensus.epochs.chain.latest()?.epoch ?? -1
}
