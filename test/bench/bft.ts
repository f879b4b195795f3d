// npm run bench:bft — commit-reveal round latency on loopback for committees of 4, 7 and 10
// honest members. Each member is its own worker thread (test/bench/bft-member.ts) with its own
// event loop, libp2p node (TCP, noise, yamux, gossipsub), round engine and signature cache, as on
// separate machines; on this 2-core machine they share two cores. Each round's input is an
// epoch-sized batch of real spore entries (ENTRIES signed node entries from 20 origins, new
// every round), and evaluating it is what a member does with epoch content: decode every entry,
// check its signature, hash. Two cases:
//   seen   the members checked the entries before the round, as they do when entries reach
//          them through latent gossip before a leader proposes them (the daemon's case: its
//          signature cache answers in the round)
//   fresh  every signature is new to every member in the round (the worst case: 7 members
//          checking 200 signatures each on 2 cores)
// Latency is proposal to certificate at the proposer (or to its failure: failed rounds count in
// the median and p99, and their number is printed). Rounds run back to back, as fast as the
// committee certifies them. Transports: direct streams among the members (the daemon's),
// gossipsub with signed messages (the daemon's before), and unsigned gossipsub.
// "cpu" is the CPU time the members spent per round, per member (the process's CPU time over
// the rounds, all threads): with members sharing two cores, a round cannot take less than
// members × cpu / 2.
// Target: 7-member round ≤ 50 ms median over direct streams.
// BENCH_BFT_PROFILE=DIR writes a CPU profile of each member over the measured rounds.
import { Worker } from 'node:worker_threads'
import { selectCommittee } from '../../consensus/index.ts'
import { encodeCanonical, randomSecretKey } from '../../crypto/index.ts'
import { signEntry, signerOf } from '../../spores/index.ts'
import type { FromMember, ToMember, Transport } from './bft-member.ts'

const ROUNDS = Number(process.env.BENCH_BFT_ROUNDS ?? 40)
const WARMUP = 3
const ENTRIES = Number(process.env.BENCH_BFT_ENTRIES ?? 200)
const SIZES = (process.env.BENCH_BFT_SIZES ?? '4,7,10').split(',').map(Number)
const TRANSPORTS = (process.env.BENCH_BFT_TRANSPORTS ?? 'direct,gossip-signed,gossip-unsigned').split(',') as Transport[]
const CASES = (process.env.BENCH_BFT_CASES ?? 'seen,fresh').split(',') as Array<'seen' | 'fresh'>
const SEED = new Uint8Array(32)
const TITLES: Record<Transport, string> = {
  direct: 'direct streams among members (the daemon)',
  'gossip-signed': 'gossipsub StrictSign',
  'gossip-unsigned': 'gossipsub StrictNoSign, content message ids'
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
}

class Member {
  readonly worker: Worker
  private readonly waiting: Array<{ t: FromMember['t'], resolve: (m: FromMember) => void, reject: (e: Error) => void }> = []

  constructor (transport: Transport) {
    this.worker = new Worker(new URL('./bft-member.ts', import.meta.url), { env: { ...process.env, BENCH_BFT_TRANSPORT: transport } })
    this.worker.on('message', (m: FromMember) => {
      if (m.t === 'error') {
        for (const w of this.waiting.splice(0)) w.reject(new Error(m.message))
        return
      }
      const i = this.waiting.findIndex(w => w.t === m.t)
      if (i >= 0) this.waiting.splice(i, 1)[0].resolve(m)
    })
    this.worker.on('error', (err) => { for (const w of this.waiting.splice(0)) w.reject(err) })
  }

  async next<T extends FromMember['t']> (t: T, timeoutMs = 120_000): Promise<Extract<FromMember, { t: T }>> {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`member did not answer ${t} in ${timeoutMs} ms`)) }, timeoutMs)
      this.waiting.push({ t, resolve: (m) => { clearTimeout(timer); resolve(m as Extract<FromMember, { t: T }>) }, reject: (e) => { clearTimeout(timer); reject(e) } })
    })
  }

  send (m: ToMember): void {
    this.worker.postMessage(m)
  }
}

function roundInputs (count: number): Uint8Array[] {
  const origins = Array.from({ length: 20 }, () => signerOf(randomSecretKey()))
  return Array.from({ length: count }, (_, r) => encodeCanonical(Array.from({ length: ENTRIES }, (_, i) => {
    const origin = origins[i % origins.length]
    return signEntry(origin, { type: 'node', key: origin.peerId, value: { addrs: [`/ip4/10.0.${r % 250}.${i % 250}/tcp/4001`], role: 'sclerotium', hardware: { cores: 4, round: r, i } }, seq: r * ENTRIES + i + 1, issuedAt: Date.now() }).bytes
  })))
}

/** Starts or stops every member's profiler (BENCH_BFT_PROFILE=DIR; nothing without it). */
async function profile (members: Member[], on: boolean): Promise<void> {
  const answered = members.map(async m => await m.next('profiled'))
  for (const m of members) m.send({ t: 'profile', on })
  await Promise.all(answered)
}

async function benchCommittee (size: number, transport: Transport, seen: boolean): Promise<{ median: number, p99: number, failed: number, busyMs: number }> {
  const f = Math.floor((size - 1) / 3)
  const members = Array.from({ length: size }, () => new Member(transport))
  try {
    const started = await Promise.all(members.map(async m => await m.next('started')))
    const peers = started.map(s => ({ peerId: s.peerId, addrs: s.addrs }))
    const ready = members.map(async m => await m.next('ready'))
    for (const m of members) m.send({ t: 'connect', peers, f, size })
    await Promise.all(ready)
    const ids = peers.map(p => p.peerId)
    const proposer = members[ids.indexOf(selectCommittee(ids, SEED, f, size)[0])]
    // Signed before the clock starts: what a round carries, not what it costs to write it.
    const inputs = roundInputs(ROUNDS + WARMUP)
    const prepared = members.map(async m => await m.next('prepared'))
    for (const m of members) m.send({ t: 'prepare', inputs, seen })
    await Promise.all(prepared)
    await profile(members, true)
    const done = proposer.next('done', 600_000)
    const cpu = process.cpuUsage()
    proposer.send({ t: 'run' })
    const { latencies, failed } = await done
    // CPU time of the whole process (every member's thread) over the rounds, per member and round
    const used = process.cpuUsage(cpu)
    await profile(members, false)
    const busyMs = (used.user + used.system) / 1000 / members.length / latencies.length
    const measured = latencies.slice(WARMUP).sort((a, b) => a - b)
    return { median: percentile(measured, 0.5), p99: percentile(measured, 0.99), failed, busyMs }
  } finally {
    await Promise.all(members.map(async m => {
      const stopped = m.next('stopped', 10_000).catch(() => undefined)
      m.send({ t: 'stop' })
      await stopped
      await m.worker.terminate()
    }))
  }
}

const inputBytes = roundInputs(1)[0].length
console.log(`commit-reveal round latency on loopback, one worker thread per member on ${(await import('node:os')).availableParallelism()} cores, ${ROUNDS} rounds back to back per committee (after ${WARMUP} warm-up rounds), each carrying ${ENTRIES} signed entries (${inputBytes} bytes)`)
for (const kind of CASES) {
  console.log(kind === 'seen' ? 'entries seen before the round (latent gossip; the daemon\'s case):' : 'fresh entries (every signature new to every member):')
  for (const transport of TRANSPORTS) {
    for (const size of SIZES) {
      const r = await benchCommittee(size, transport, kind === 'seen')
      const target = size === 7 && transport === 'direct' && kind === 'seen' ? `  (target ≤ 50 ms median: ${r.median <= 50 ? 'met' : 'missed'})` : ''
      console.log(`  ${TITLES[transport].padEnd(45)} committee ${String(size).padStart(2)} (f=${Math.floor((size - 1) / 3)}): median ${r.median.toFixed(1).padStart(6)} ms  p99 ${r.p99.toFixed(1).padStart(6)} ms  failed ${r.failed}  cpu ${r.busyMs.toFixed(1)} ms/member/round${target}`)
    }
  }
}
