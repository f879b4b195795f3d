// One committee member of `npm run bench:bft`, in its own worker thread: its own event loop,
// libp2p node (TCP, noise, yamux, gossipsub), round engine and signature cache, as a member on
// its own machine would have. The bench's main thread tells it whom to dial; the proposer's
// worker runs the rounds and reports their latencies.
import { parentPort, threadId } from 'node:worker_threads'
import { Session } from 'node:inspector/promises'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import { sha256, decodeCanonical } from '../../crypto/index.ts'
import { decodeEntry, verifyEntrySignature } from '../../spores/index.ts'
import { RoundEngine, gossipsubTransport, consensusTopics, type ConsensusPubSub, type GossipsubLike, type Operation } from '../../consensus/index.ts'
import { directLinks, type DirectLinks } from '../../node/consensus/direct-links.ts'
import { noiseAsBundled } from '../harness/bundled-noise.ts'

// The noise an installed daemon runs (node:crypto, as bundled); BENCH_BFT_NOISE=wasm for the packages' WebAssembly.
if (process.env.BENCH_BFT_NOISE !== 'wasm') noiseAsBundled()
const { noise } = await import('@libp2p/noise')

export type Transport = 'direct' | 'gossip-signed' | 'gossip-unsigned'
export type ToMember =
  | { t: 'connect', peers: Array<{ peerId: string, addrs: string[] }>, f: number, size: number }
  | { t: 'prepare', inputs: Uint8Array[], seen: boolean }
  | { t: 'run' }
  | { t: 'profile', on: boolean }
  | { t: 'stop' }
export type FromMember =
  | { t: 'started', peerId: string, addrs: string[] }
  | { t: 'ready' }
  | { t: 'prepared' }
  | { t: 'profiled' }
  | { t: 'done', latencies: number[], failed: number }
  | { t: 'stopped' }
  | { t: 'error', message: string }

const PREFIX = 'mycelium/bench'
const SEED = new Uint8Array(32)
const port = parentPort
if (port === null) throw new Error('bft-member runs as a worker thread')
const transport = (process.env.BENCH_BFT_TRANSPORT ?? 'direct') as Transport

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

function post (m: FromMember): void {
  port?.postMessage(m)
}

const privateKey = await generateKeyPair('Ed25519')
const libp2p: Libp2p<{ identify: unknown, pubsub: unknown }> = await createLibp2p({
  privateKey,
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  // The daemon's gossipsub signs every message (StrictSign); consensus messages carry their own
  // signatures, so the unsigned variant (content message ids) is measured beside it.
  services: {
    identify: identify(),
    pubsub: gossipsub(transport === 'gossip-unsigned'
      ? { allowPublishToZeroTopicPeers: true, emitSelf: false, globalSignaturePolicy: 'StrictNoSign', msgIdFn: (m: { data: Uint8Array }) => sha256(m.data) } as any
      : { allowPublishToZeroTopicPeers: true, emitSelf: false, globalSignaturePolicy: 'StrictSign' })
  }
})
const self = libp2p.peerId.toString()
const signer = { peerId: self, secretKey: privateKey.raw.slice(0, 32) }
const gossip = gossipsubTransport(libp2p.services.pubsub as unknown as GossipsubLike)
const topics = consensusTopics(PREFIX)
let links: DirectLinks | undefined
let engine: RoundEngine | undefined
let committee: string[] = []
post({ t: 'started', peerId: self, addrs: libp2p.getMultiaddrs().map(a => a.toString()) })

async function connect (peers: Array<{ peerId: string, addrs: string[] }>, f: number, size: number): Promise<void> {
  committee = peers.map(p => p.peerId)
  let pubsub: ConsensusPubSub = gossip
  if (transport === 'direct') {
    links = directLinks({ host: libp2p, gossip, protocol: '/bench/bft/direct/1.0.0', directTopic: topics.rounds, accepts: (p) => committee.includes(p) })
    await links.start()
    pubsub = links
  }
  const op: Operation = {
    name: 'bench',
    objective: true,
    proposers: 'leader',
    context: () => ({ candidates: committee, seed: SEED }),
    // What a member does with epoch content: decode every entry, check its signature, hash.
    evaluate: async (_key, input) => check(input)
  }
  engine = new RoundEngine({ signer, pubsub, topicPrefix: PREFIX, f, committeeSize: size, deadlines: { minMs: 1000 } })
  engine.register(op)
  engine.start()
  const others = peers.filter(p => p.peerId !== self)
  for (let pass = 0; pass < 5; pass++) {
    await Promise.all(others.map(async p => await libp2p.dial(p.addrs.map(a => multiaddr(a))).catch(() => undefined)))
  }
  const pubsubService = libp2p.services.pubsub as unknown as { getSubscribers: (topic: string) => PeerId[] }
  for (let i = 0; i < 400; i++) {
    const connected = new Set(libp2p.getConnections().map(c => c.remotePeer.toString()))
    if (others.every(p => connected.has(p.peerId)) && pubsubService.getSubscribers(topics.rounds).length >= others.length) break
    await sleep(50)
  }
}

/** Every round's entries, checked the way a member checks epoch content. */
function check (input: Uint8Array): Uint8Array {
  const list = decodeCanonical(input) as Uint8Array[]
  for (const bytes of list) if (!verifyEntrySignature(decodeEntry(bytes))) throw new Error('bad entry')
  return sha256(input)
}

let inputs: Uint8Array[] = []

/**
 * Takes the rounds' inputs. With `seen`, the member checks their entries now, as it would have
 * when they reached it through latent gossip before the leader proposed them; without, every
 * signature in a round is new to it.
 */
function prepare (all: Uint8Array[], seen: boolean): void {
  inputs = all
  if (seen) for (const input of all) check(input)
}

let profiler: Session | undefined

/** BENCH_BFT_PROFILE=DIR: every member profiles the rounds only (not its start or the checks of `prepare`). */
async function profile (on: boolean): Promise<void> {
  const dir = process.env.BENCH_BFT_PROFILE
  if (dir === undefined || dir === '') return
  if (on) {
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.start')
    return
  }
  if (profiler === undefined) return
  const { profile } = await profiler.post('Profiler.stop')
  writeFileSync(join(dir, `bft-member-${threadId}.cpuprofile`), JSON.stringify(profile))
  profiler.disconnect()
  profiler = undefined
}

async function run (): Promise<void> {
  const latencies: number[] = []
  let failed = 0
  for (let r = 0; r < inputs.length; r++) {
    const start = performance.now()
    try {
      await engine?.run('bench', `bench:${r}`, async () => inputs[r], { maxAttempts: 1 })
    } catch {
      failed++
    }
    // A failed round counts with the time it took to fail.
    latencies.push(performance.now() - start)
  }
  post({ t: 'done', latencies, failed })
}

port.on('message', (m: ToMember) => {
  const step = async (): Promise<void> => {
    switch (m.t) {
      case 'connect':
        await connect(m.peers, m.f, m.size)
        post({ t: 'ready' })
        break
      case 'prepare':
        prepare(m.inputs, m.seen)
        post({ t: 'prepared' })
        break
      case 'run':
        await run()
        break
      case 'profile':
        await profile(m.on)
        post({ t: 'profiled' })
        break
      case 'stop':
        engine?.stop()
        await links?.stop()
        await libp2p.stop()
        post({ t: 'stopped' })
        port.close()
        break
    }
  }
  step().catch((err: Error) => { post({ t: 'error', message: err.stack ?? err.message }) })
})
