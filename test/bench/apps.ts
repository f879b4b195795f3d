// npm run bench:apps — applications on four sclerotium daemons on loopback (the bundled daemon,
// npm run build:node), each figure measured in this one run:
//   - plan → first healthy instance: from the moment `app plan` is run (its CLI process
//     included) until an instance is reported healthy; the plan waits for the next certified
//     primary epoch (epochs every 2 s here);
//   - failover: a node running one of the two instances of a `--min 2` service is killed with
//     SIGKILL; time until two healthy instances run again (BENCH_KILLS times, restarting the
//     killed node in between): median and maximum;
//   - single instance: the lease holder of a `--max 1` service is killed with SIGKILL; time until
//     another copy writes its first line (the lease, 3 s, must lapse first);
//   - the gateway: requests/s and latency (p50, p99) of GET /app/NAME/ on a sclerotium whose own
//     node runs no instance (every request crosses the mesh), against the same requests sent
//     straight to an instance's port, with 1 and with 32 requests in flight; BENCH_REQUESTS
//     requests per setting, so every loop ends by itself.
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, waitFor, sleep, type TestNode } from '../harness/index.ts'
import { startSclerotia, waitForEpoch } from '../consensus/bft-daemon-nodes.ts'

const KILLS = Number(process.env.BENCH_KILLS ?? 3)
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000)

interface AppStatus { instances: Array<{ peerId: string, health: string, digest: string }>, local?: { port?: number, lease?: { holds: boolean } } }

const SERVER = "import { createServer } from 'node:http'\ncreateServer((req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok') }).listen(Number(process.env.PORT), '127.0.0.1')\n"
// each copy names itself at random: in a PID namespace of its own every copy is pid 2
const SOLO = "import { appendFileSync } from 'node:fs'\nconst me = Math.random().toString(36).slice(2)\nsetInterval(() => { appendFileSync(process.env.TRACE, `${me} ${Date.now()}\\n`) }, 10)\n"

function bundleDir (name: string, source: string, env: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `myc-bench-${name}-`))
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name, version: '1.0.0', kind: 'service', command: 'node', args: ['app.mjs'], env, resources: { cpuMillis: 500, memoryMb: 128 } }))
  writeFileSync(join(dir, 'app.mjs'), source)
  return dir
}

let plannedAt = 0

async function deploy (admin: TestNode, dir: string, name: string, args: string[]): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'myc-bench-spore-')), `${name}.spore`)
  const packed = await admin.cli(['app', 'pack', dir, '--out', file])
  if (packed.code !== 0) throw new Error(packed.stderr)
  const { digest } = await admin.cliJson<{ digest: string }>(['app', 'publish', file])
  plannedAt = Date.now()
  const planned = await admin.cli(['app', 'plan', name, '--digest', digest, ...args])
  if (planned.code !== 0) throw new Error(planned.stderr)
  return digest
}

async function statusOf (node: TestNode, name: string): Promise<AppStatus | undefined> {
  try { return await node.api<AppStatus>(`/apps/status?name=${name}`) } catch { return undefined }
}

const healthyOn = (s: AppStatus | undefined, digest: string): string[] => (s?.instances ?? []).filter(i => i.health === 'healthy' && i.digest === digest).map(i => i.peerId)
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]

async function load (url: string, inFlight: number): Promise<{ perS: number, p50: number, p99: number, failed: number }> {
  const latencies: number[] = []
  let next = 0
  let failed = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < REQUESTS) {
      next++
      const at = performance.now()
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(10_000) })
        await r.arrayBuffer()
        if (r.status !== 200) failed++
      } catch { failed++ }
      latencies.push(performance.now() - at)
    }
  }))
  return { perS: REQUESTS / ((performance.now() - t0) / 1000), p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), failed }
}

async function main (): Promise<void> {
  const cluster = new Cluster({ node: () => ({ env: { MYCELIUM_LOG_LEVEL: 'info' }, startArgs: ['--role', 'sclerotium', '--epoch-interval-s', '2', '--bft-f', '1', '--http-listen', '127.0.0.1:0'] }) })
  try {
    const nodes = await startSclerotia(cluster, 4)
    const [admin] = nodes
    await waitForEpoch([admin], 1, 90_000)

    // gateway first, on a quiet network
    const web = await deploy(admin, bundleDir('web', SERVER), 'web', ['--min', '1', '--max', '1'])
    let host: TestNode | undefined
    await waitFor(async () => { const h = healthyOn(await statusOf(admin, 'web'), web); host = nodes.find(n => n.peerId === h[0]); return host !== undefined }, { timeoutMs: 60_000, intervalMs: 50, what: 'web healthy' })
    const firstHealthyMs = Date.now() - plannedAt
    const port = (await statusOf(host!, 'web'))!.local!.port!
    const front = nodes.find(n => n !== host)!
    const gatewayUrl = new URL('/app/web/', (await front.status()).httpUrl).toString()
    await waitFor(async () => (await fetch(gatewayUrl)).status === 200, { timeoutMs: 30_000, intervalMs: 250, what: 'the gateway answering' })
    const rows: string[] = []
    for (const inFlight of [1, 32]) {
      const direct = await load(`http://127.0.0.1:${port}/`, inFlight)
      const gw = await load(gatewayUrl, inFlight)
      rows.push(`gateway, ${String(inFlight).padStart(2)} in flight   ${gw.perS.toFixed(0).padStart(6)} req/s  p50 ${gw.p50.toFixed(1)} ms  p99 ${gw.p99.toFixed(1)} ms  failed ${gw.failed}   | direct ${direct.perS.toFixed(0).padStart(6)} req/s  p50 ${direct.p50.toFixed(1)} ms  p99 ${direct.p99.toFixed(1)} ms   | ratio ${(gw.perS / direct.perS).toFixed(2)}`)
    }
    await admin.cli(['app', 'rm', 'web'])

    // failover of a --min 2 service
    const svc = await deploy(admin, bundleDir('svc', SERVER), 'svc', ['--min', '2', '--max', '3'])
    const failovers: number[] = []
    for (let k = 0; k < KILLS; k++) {
      await waitFor(async () => healthyOn(await statusOf(admin, 'svc'), svc).length === 2, { timeoutMs: 60_000, intervalMs: 100, what: 'two healthy instances of svc' })
      const running = healthyOn(await statusOf(admin, 'svc'), svc)
      const victim = nodes.find(n => n !== admin && running.includes(n.peerId)) ?? nodes.find(n => running.includes(n.peerId))!
      const witness = nodes.find(n => n !== victim)!
      const t0 = Date.now()
      await victim.kill()
      await waitFor(async () => { const h = healthyOn(await statusOf(witness, 'svc'), svc); return h.length === 2 && !h.includes(victim.peerId) }, { timeoutMs: 60_000, intervalMs: 50, what: 'two healthy instances after the kill' })
      failovers.push(Date.now() - t0)
      await victim.start()
      await cluster.waitForFullMesh(60_000)
      await sleep(3000)
    }
    await admin.cli(['app', 'rm', 'svc'])

    // a single instance: SIGKILL of the lease holder
    const trace = join(mkdtempSync(join(tmpdir(), 'myc-bench-trace-')), 'trace')
    await deploy(admin, bundleDir('solo', SOLO, { TRACE: trace }), 'solo', ['--min', '1', '--max', '1'])
    let holder: TestNode | undefined
    await waitFor(async () => { for (const n of nodes) if ((await statusOf(n, 'solo'))?.local?.lease?.holds === true) { holder = n; return true } return false }, { timeoutMs: 60_000, intervalMs: 250, what: 'a holder of solo' })
    await waitFor(() => existsSync(trace), { timeoutMs: 30_000, intervalMs: 100, what: 'solo running' })
    const pids = (): string[] => [...new Set(readFileSync(trace, 'utf8').trim().split('\n').map(l => l.split(' ')[0]))]
    const first = pids()
    const t0 = Date.now()
    await holder!.kill()
    let takeover = 0
    await waitFor(() => {
      const lines = readFileSync(trace, 'utf8').trim().split('\n').map(l => l.split(' '))
      const fresh = lines.find(([pid]) => !first.includes(pid))
      if (fresh !== undefined) takeover = Number(fresh[1]) - t0
      return fresh !== undefined
    }, { timeoutMs: 60_000, intervalMs: 20, what: 'another copy of solo running' })

    console.log('applications on 4 sclerotium daemons, loopback (npm run bench:apps)')
    console.log(`plan → first healthy instance: ${firstHealthyMs} ms (app plan run at t = 0; epochs every 2 s)`)
    for (const r of rows) console.log(r)
    console.log(`failover of a --min 2 service after SIGKILL of a host: median ${quantile(failovers, 0.5)} ms, max ${Math.max(...failovers)} ms over ${failovers.length} kills (until 2 healthy instances are reported again)`)
    console.log(`single instance (--max 1) after SIGKILL of the lease holder: ${takeover} ms until another copy runs (lease 3 s)`)
  } finally {
    await cluster.destroy()
  }
}

await main()
