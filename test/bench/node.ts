// npm run bench:node — idle memory of one node, start-to-first-peer time on loopback, and the
// same for a 10-node network. Runs the TypeScript sources and, when built, the bundled
// daemon (npm run build:node), side by side in one run so the ratios are comparable.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Cluster, TestNode, REPO_ROOT, waitFor, sleep } from '../harness/index.ts'

const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30)
const BUNDLE = join(REPO_ROOT, 'dist/mycelium.mjs')

function rssMiB (pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith('VmRSS:'))!
  return Number(line.split(/\s+/)[1]) / 1024
}

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

async function idleRss (cliPath: string, label: string): Promise<void> {
  const cluster = new Cluster({ node: () => ({ cliPath, env: { MYCELIUM_LOG_LEVEL: 'info' } }) })
  try {
    const [node] = await cluster.startNetwork(1)
    await sleep(IDLE_S * 1000)
    console.log(`idle RSS after ${IDLE_S} s (${label}): ${rssMiB(node.process!.pid!).toFixed(1)} MiB`)
  } finally {
    await cluster.destroy()
  }
}

async function joinTimes (cliPath: string, label: string, size: number): Promise<void> {
  const cluster = new Cluster({ node: () => ({ cliPath }) })
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
    if (size === 2) console.log(`start → first peer, 2 nodes (${label}): ${times[0]} ms`)
    else console.log(`start → first peer, ${size} nodes started at once (${label}): median ${times[Math.floor(times.length / 2)]} ms, slowest ${times[times.length - 1]} ms; full mesh after ${meshMs} ms (checked from ${meshStart - spawnedAt} ms)`)
  } finally {
    await cluster.destroy()
  }
}

const variants: Array<[string, string]> = [[join(REPO_ROOT, 'bin/mycelium.js'), 'sources']]
if (existsSync(BUNDLE)) variants.push([BUNDLE, 'bundle'])
else console.log('(no bundle: run `npm run build:node` to measure the bundled daemon too)')

for (const [cli, label] of variants) await idleRss(cli, label)
for (const [cli, label] of variants) {
  await joinTimes(cli, label, 2)
  await joinTimes(cli, label, 10)
}
