// npm run bench:node — what one node costs and how fast nodes find each other: idle memory of a
// rhizomorph and of a sclerotium, CPU-seconds and wall time from exec to "node ready", and the
// time for 2 and 10 nodes started at once to see a first peer and to form a full mesh (with the
// CPU-seconds each member spent by then). Runs the
// TypeScript sources and, when built, the bundled daemon (npm run build:node) the way install.sh
// runs it, side by side in one run so the ratios are comparable on a noisy machine.
// BENCH_BASELINE=path/to/an/older/mycelium.mjs adds that bundle as a third variant (before/after).
// Idle RSS is the median of BENCH_IDLE_NODES nodes of one network, each left to settle for
// BENCH_IDLE_S, split into what the process cannot shrink (the node binary's pages it touched,
// shared libraries) and what it can (anonymous memory: V8's heap and code, malloc).
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import { Cluster, TestNode, NODE, REPO_ROOT, waitFor, sleep } from '../harness/index.ts'

const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30)
const IDLE_NODES = Number(process.env.BENCH_IDLE_NODES ?? 3)
const READY_RUNS = Number(process.env.BENCH_READY_RUNS ?? 5)
const BUNDLE = join(REPO_ROOT, 'dist/mycelium.mjs')
const CLOCK_TICKS = 100 // USER_HZ on Linux: /proc/<pid>/stat counts CPU time in 1/100 s

interface Variant { label: string, cliPath: string, env: Record<string, string> }

function rssMiB (pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith('VmRSS:'))!
  return Number(line.split(/\s+/)[1]) / 1024
}

/** User + system CPU-seconds the process has used so far. */
function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Milliseconds from spawning `start` to the daemon logging its first peer. */
function firstPeerMs (node: TestNode, spawnedAt: number): number | undefined {
  for (const line of node.log().split('\n')) {
    try {
      const event = JSON.parse(line)
      if (event.msg === 'peer connected') return event.time - spawnedAt
    } catch {}
  }
  return undefined
}

interface Rss { total: number, binary: number, anonymous: number }

/** Resident MiB of the process: all of it, the `node` executable's pages, anonymous memory. */
function rssParts (pid: number): Rss {
  const parts = { total: rssMiB(pid), binary: 0, anonymous: 0 }
  let mapping = ''
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (header !== null) { mapping = header[1]; continue }
    if (!line.startsWith('Rss:')) continue
    const mib = Number(line.split(/\s+/)[1]) / 1024
    if (mapping === '' || mapping.startsWith('[heap]') || mapping.startsWith('[anon')) parts.anonymous += mib
    else if (mapping === NODE_BINARY) parts.binary += mib
  }
  return parts
}
const NODE_BINARY = realpathSync(NODE)

/** Median idle RSS of IDLE_NODES nodes of one network, all with `role`, after IDLE_S. */
async function idleRss (v: Variant, role: 'rhizomorph' | 'sclerotium'): Promise<Rss> {
  const cluster = new Cluster({ node: () => ({ cliPath: v.cliPath, env: { MYCELIUM_LOG_LEVEL: 'info', ...v.env }, startArgs: ['--role', role] }) })
  try {
    const nodes = await cluster.startNetwork(IDLE_NODES)
    await sleep(IDLE_S * 1000)
    const all = nodes.map(n => rssParts(n.process!.pid!)).sort((a, b) => a.total - b.total)
    return all[Math.floor(all.length / 2)]
  } finally {
    await cluster.destroy()
  }
}

/**
 * CPU-seconds and wall milliseconds from exec to the "node ready" line, for a node restarting on
 * its existing home (what a service does at every boot); median of READY_RUNS.
 */
async function readyCost (v: Variant): Promise<{ cpuS: number, wallMs: number }> {
  const cluster = new Cluster({ node: () => ({ cliPath: v.cliPath, env: v.env }) })
  try {
    const [node] = await cluster.startNetwork(1)
    await node.stop()
    const runs: Array<{ cpuS: number, wallMs: number }> = []
    for (let i = 0; i < READY_RUNS; i++) {
      const startedAt = performance.now()
      const child = spawn(NODE, [v.cliPath, 'start', '--home', node.home, ...node.listenAddrs(), '--api-port', '0'], { env: { ...process.env, MYCELIUM_LOG_LEVEL: 'info', ...v.env }, stdio: ['ignore', 'pipe', 'ignore'] })
      const exited = new Promise(resolve => child.once('exit', resolve))
      runs.push(await new Promise((resolve, reject) => {
        let out = ''
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('"node ready"')) { out = ''; resolve({ cpuS: cpuSeconds(child.pid!), wallMs: performance.now() - startedAt }) }
        })
        child.once('exit', (code) => { reject(new Error(`${v.label} exited with ${code} before "node ready"`)) })
      }))
      child.kill('SIGTERM')
      await exited
    }
    return { cpuS: median(runs.map(r => r.cpuS)), wallMs: median(runs.map(r => r.wallMs)) }
  } finally {
    await cluster.destroy()
  }
}

async function joinTimes (v: Variant, size: number): Promise<void> {
  const cluster = new Cluster({ node: () => ({ cliPath: v.cliPath, env: v.env }) })
  try {
    const founder = cluster.newNode('n0')
    await founder.start()
    const members = Array.from({ length: size - 1 }, (_, i) => cluster.newNode(`n${i + 1}`))
    for (const m of members) await cluster.join(m, founder)
    const spawnedAt = Date.now()
    await Promise.all(members.map(async m => { await m.start() }))
    await waitFor(() => members.every(m => firstPeerMs(m, spawnedAt) !== undefined), { timeoutMs: 60_000, what: 'every member to log a peer' })
    const times = members.map(m => firstPeerMs(m, spawnedAt)!).sort((a, b) => a - b)
    const meshStart = Date.now()
    await cluster.waitForFullMesh(60_000)
    const meshMs = Date.now() - spawnedAt
    // CPU each member spent from exec to the full mesh: with every member on two cores, the
    // mesh cannot form sooner than members × this / 2
    const cpu = median(members.map(m => cpuSeconds(m.process!.pid!)))
    if (size === 2) console.log(`start → first peer, 2 nodes (${v.label}): ${times[0]} ms`)
    else console.log(`start → first peer, ${size} nodes started at once (${v.label}): median ${median(times)} ms, slowest ${times[times.length - 1]} ms; full mesh after ${meshMs} ms (checked from ${meshStart - spawnedAt} ms); ${cpu.toFixed(2)} CPU-s per member by then (median)`)
  } finally {
    await cluster.destroy()
  }
}

// BENCH_SOURCES=0 leaves the TypeScript sources out (the slowest variant) to compare bundles only
const variants: Variant[] = process.env.BENCH_SOURCES === '0' ? [] : [{ label: 'sources', cliPath: join(REPO_ROOT, 'bin/mycelium.js'), env: {} }]
// as the installed command runs it (install.sh): a 1 MiB young generation
const INSTALLED_FLAGS = { NODE_OPTIONS: '--max-semi-space-size=1' }
if (existsSync(BUNDLE)) variants.push({ label: 'bundle', cliPath: BUNDLE, env: INSTALLED_FLAGS })
else console.log('(no bundle: run `npm run build:node` to measure the bundled daemon too)')
if (process.env.BENCH_BASELINE !== undefined) variants.push({ label: 'baseline bundle', cliPath: process.env.BENCH_BASELINE, env: INSTALLED_FLAGS })

for (const v of variants) {
  const rhizomorph = await idleRss(v, 'rhizomorph')
  const sclerotium = await idleRss(v, 'sclerotium')
  console.log(`idle RSS after ${IDLE_S} s (${v.label}, median of ${IDLE_NODES} nodes): rhizomorph ${rhizomorph.total.toFixed(1)} MiB, sclerotium ${sclerotium.total.toFixed(1)} MiB`)
  const parts = (r: Rss): string => `node binary ${r.binary.toFixed(1)}, anonymous ${r.anonymous.toFixed(1)}, other files ${(r.total - r.binary - r.anonymous).toFixed(1)}`
  console.log(`  of which (${v.label}): rhizomorph ${parts(rhizomorph)} MiB; sclerotium ${parts(sclerotium)} MiB`)
}
for (const v of variants) {
  const { cpuS, wallMs } = await readyCost(v)
  console.log(`exec → "node ready", restart on its home (${v.label}, median of ${READY_RUNS}): ${cpuS.toFixed(2)} CPU-s, ${wallMs.toFixed(0)} ms wall`)
}
for (const v of variants) {
  await joinTimes(v, 2)
  await joinTimes(v, 10)
}
