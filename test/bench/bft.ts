// npm run bench:bft — commit-reveal round latency on loopback for committees of 4, 7 and 10
// honest members: real libp2p nodes in one process (TCP, noise, yamux, gossipsub), one round
// engine each. Each round's input is an epoch-sized batch of real spore entries (ENTRIES
// signed node entries from 20 origins, fresh every round), and evaluating it is what a member
// does with epoch content: decode every entry, check its signature, hash. Latency is proposal to
// certificate at the proposer (or to its failure: failed rounds count in the median and p99,
// and their number is printed). Target: 7-member round ≤ 50 ms median.
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { sha256, encodeCanonical, decodeCanonical, randomSecretKey } from '../../crypto/index.ts'
import { signEntry, signerOf, decodeEntry, verifyEntrySignature } from '../../spores/index.ts'
import { RoundEngine, gossipsubTransport, consensusTopics, selectCommittee, type GossipsubLike, type Operation } from '../../consensus/index.ts'

const ROUNDS = Number(process.env.BENCH_BFT_ROUNDS ?? 40)
const ENTRIES = Number(process.env.BENCH_BFT_ENTRIES ?? 200)
const origins = Array.from({ length: 20 }, () => signerOf(randomSecretKey()))
const SIZES = (process.env.BENCH_BFT_SIZES ?? '4,7,10').split(',').map(Number)
const PREFIX = 'mycelium/bench'
const SEED = new Uint8Array(32)

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

async function benchCommittee (size: number, signedGossip: boolean): Promise<{ median: number, p99: number, failed: number }> {
  const f = Math.floor((size - 1) / 3)
  const nodes = await Promise.all(Array.from({ length: size }, async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const libp2p = await createLibp2p({
      privateKey,
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      // Consensus messages carry their own signatures; gossipsub's own signing can be dropped
      // (content-addressed message ids) — measured both ways.
      services: { identify: identify(), pubsub: gossipsub(signedGossip ? { allowPublishToZeroTopicPeers: true } as any : { allowPublishToZeroTopicPeers: true, globalSignaturePolicy: 'StrictNoSign', msgIdFn: (m: { data: Uint8Array }) => sha256(m.data) } as any) }
    })
    return { libp2p, signer: { peerId: libp2p.peerId.toString(), secretKey: privateKey.raw.slice(0, 32) } }
  }))
  const ids = nodes.map(n => n.signer.peerId)
  const op: Operation = {
    name: 'bench',
    objective: true,
    proposers: 'leader',
    context: () => ({ candidates: ids, seed: SEED }),
    evaluate: async (_key, input) => {
      const list = decodeCanonical(input) as Uint8Array[]
      for (const bytes of list) if (!verifyEntrySignature(decodeEntry(bytes))) throw new Error('bad entry')
      return sha256(input)
    }
  }
  const engines = nodes.map(n => {
    const e = new RoundEngine({ signer: n.signer, pubsub: gossipsubTransport(n.libp2p.services.pubsub as unknown as GossipsubLike), topicPrefix: PREFIX, f, committeeSize: size, deadlines: { minMs: 1000 } })
    e.register(op)
    e.start()
    return e
  })
  try {
    for (let pass = 0; pass < 5; pass++) {
      await Promise.all(nodes.flatMap((a, i) => nodes.slice(i + 1).map(async b => await a.libp2p.dial(b.libp2p.getMultiaddrs()).catch(() => undefined))))
    }
    const topic = consensusTopics(PREFIX).rounds
    for (let i = 0; i < 400; i++) {
      if (nodes.every(n => (n.libp2p.services.pubsub as any).getSubscribers(topic).map((p: PeerId) => p.toString()).length >= size - 1)) break
      await sleep(50)
    }
    const committee = selectCommittee(ids, SEED, f, size)
    const proposer = engines[ids.indexOf(committee[0])]
    // Signed before the clock starts: what a round carries, not what it costs to write it.
    const inputs = Array.from({ length: ROUNDS + 3 }, (_, r) => encodeCanonical(Array.from({ length: ENTRIES }, (_, i) => {
      const origin = origins[i % origins.length]
      return signEntry(origin, { type: 'node', key: origin.peerId, value: { addrs: [`/ip4/10.0.${r % 250}.${i % 250}/tcp/4001`], role: 'sclerotium', hardware: { cores: 4, round: r, i } }, seq: r * ENTRIES + i + 1, issuedAt: Date.now() }).bytes
    })))
    const latencies: number[] = []
    let failed = 0
    for (let r = 0; r < ROUNDS + 3; r++) {
      const start = performance.now()
      try {
        await proposer.run('bench', `bench:${r}`, async () => inputs[r], { maxAttempts: 1 })
      } catch {
        if (r >= 3) failed++
      }
      // A failed round counts with the time it took to fail.
      if (r >= 3) latencies.push(performance.now() - start)
    }
    latencies.sort((a, b) => a - b)
    return { median: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), failed }
  } finally {
    for (const e of engines) e.stop()
    await Promise.all(nodes.map(async n => await n.libp2p.stop()))
  }
}

function inputsBytes (): number {
  return encodeCanonical([signEntry(origins[0], { type: 'node', key: origins[0].peerId, value: { addrs: ['/ip4/10.0.0.0/tcp/4001'], role: 'sclerotium', hardware: { cores: 4, round: 0, i: 0 } }, seq: 1, issuedAt: Date.now() }).bytes]).length * ENTRIES
}

console.log(`commit-reveal round latency on loopback, ${ROUNDS} rounds per committee (after 3 warm-up rounds), each carrying ${ENTRIES} signed entries (${inputsBytes()} bytes)`)
for (const signedGossip of [true, false]) {
  console.log(signedGossip ? 'gossipsub StrictSign (default):' : 'gossipsub StrictNoSign, content message ids:')
  for (const size of SIZES) {
    const r = await benchCommittee(size, signedGossip)
    console.log(`  committee ${String(size).padStart(2)} (f=${Math.floor((size - 1) / 3)}): median ${r.median.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  failed ${r.failed}${size === 7 ? `  (target ≤ 50 ms median: ${r.median <= 50 ? 'met' : 'missed'})` : ''}`)
  }
}
