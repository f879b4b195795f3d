// npm run bench:scale — what the tiered mesh costs per node as the network grows. One network
// of real daemons (the bundle of `npm run build:node`, one process each, on loopback) grows
// through BENCH_SCALE_SIZES (default 10, 20, 40, 60); at each size it measures, per role:
// connections, links the topology keeps, idle bytes/s in and out (TCP payload of the node's
// sockets, from `ss -ti`), RSS and CPU %; and for the network: the time until every node sees
// every role, the time one new latent-spore entry takes to reach every node, the primary epoch
// round latency, and — from 20 nodes on — how long the topology takes to heal after 10 % of
// the nodes are killed at once (SIGKILL) and restarted, and whether an entry written before
// the kill is on every node afterwards; and the idle gossip messages each node is delivered per
// second, by topic (from the daemons' /metrics), which is where idle bytes and CPU go. Prints
// the tables. BENCH_CLI runs another bundle's entry (a copy of an older dist/) to compare two
// builds run against run; BENCH_CPU_PROFILE=FILE profiles one idle node of the role
// BENCH_CPU_PROFILE_ROLE (rhizomorph unless told).
//
// Roles are pinned (--role) so the table is about topology, not about the role policy:
// max(4, round(√N)) sclerotia (4: a committee of 3f+1 with f = 1), one hyphae in six, the rest
// rhizomorphs. Nodes start in batches of BATCH, so two cores keep up. Every wait is bounded,
// and every daemon and temporary home is removed at the end, on failure and on Ctrl-C too.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { Cluster, TestNode, waitFor, sleep } from '../harness/index.ts'
import { FULL_MESH_MAX_MEMBERS } from '../../membership/index.ts'

const SIZES = (process.env.BENCH_SCALE_SIZES ?? '10,20,40,60').split(',').map(Number).filter(n => Number.isInteger(n) && n >= 2).sort((a, b) => a - b)
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 20)
const BATCH = Number(process.env.BENCH_BATCH ?? 3)
/** Unwanted links are closed after 30 s idle (membership/link-keeper.ts): the table waits that out. */
const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 35)
const HEAL_LIMIT_S = 90
/** Another bundle's entry (a copy of an older dist/), so two builds can be compared run against run. */
const CLI_PATH = process.env.BENCH_CLI
/** Where to write a CPU profile of one idle node over the first idle window (taken through the inspector, so start-up is not in it). */
const PROFILE_TO = process.env.BENCH_CPU_PROFILE
/** The role of the profiled node. */
const PROFILE_ROLE = (process.env.BENCH_CPU_PROFILE_ROLE ?? 'rhizomorph') as Role
const CLOCK_TICKS = 100
// the default role timing: a check every 5 s, an unchanged advertisement refreshed every 60 s, a
// view entry aged out after 3 min (a crashed node leaves sooner through its neighbours' departures)
const ROLE_TIMING = JSON.stringify({ advertiseIntervalMs: 5000 })
// the default epoch interval (30 s): what an idle network runs
const ARGS = ['--bft-f', '1', '--http-listen', 'off']

type Role = 'sclerotium' | 'rhizomorph' | 'hyphae'

interface Status {
  peerId: string
  role: string
  peers: Array<{ peerId: string, role: string }>
  sclerotia: { count: number, target: number, nodes: number } | null
  links?: { members: number, kept: number, keptConnected: number, other: number, closed: number, kinds: Record<string, number> }
}

interface Sample { cpuS: number, rxBytes: number, txBytes: number, at: number }

const sclerotiaFor = (n: number): number => Math.max(4, Math.round(Math.sqrt(n)))

function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** Share of the machine's CPU time spent busy since `since` (from /proc/stat), in %. */
function machineBusy (since?: { busy: number, total: number }): { busy: number, total: number, pct: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number)
  const idle = cpu[3] + cpu[4]
  const total = cpu.reduce((a, b) => a + b, 0)
  const busy = total - idle
  return { busy, total, pct: since === undefined ? NaN : 100 * (busy - since.busy) / Math.max(1, total - since.total) }
}

function rssMiB (pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith('VmRSS:'))!
  return Number(line.split(/\s+/)[1]) / 1024
}

/** TCP payload bytes received and sent per socket, by owning pid (ss -tinp). */
function socketBytes (): Map<number, Map<string, { rx: number, tx: number }>> {
  const out = new Map<number, Map<string, { rx: number, tx: number }>>()
  let text = ''
  try {
    text = execFileSync('ss', ['-tinpH', 'state', 'established'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  } catch {
    return out
  }
  const lines = text.split('\n')
  for (let i = 0; i < lines.length - 1; i++) {
    const head = lines[i]
    const pid = /pid=(\d+)/.exec(head)?.[1]
    if (pid === undefined) continue
    const info = lines[i + 1]
    const key = head.trim().split(/\s+/).slice(2, 4).join(' ')
    const rx = Number(/bytes_received:(\d+)/.exec(info)?.[1] ?? 0)
    const tx = Number(/bytes_acked:(\d+)/.exec(info)?.[1] ?? /bytes_sent:(\d+)/.exec(info)?.[1] ?? 0)
    const sockets = out.get(Number(pid)) ?? new Map()
    sockets.set(key, { rx, tx })
    out.set(Number(pid), sockets)
    i++
  }
  return out
}

const median = (xs: number[]): number => xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const mean = (xs: number[]): number => xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length
const fmt = (x: number, digits = 0): string => Number.isFinite(x) ? x.toFixed(digits) : '-'

async function statuses (nodes: TestNode[]): Promise<Status[]> {
  return await Promise.all(nodes.map(async n => await n.api<Status>('/status')))
}

/** Every node holds the links its role calls for, all connected. */
function shaped (all: Status[], roles: Map<string, Role>, sclerotia: number): string | undefined {
  for (const s of all) {
    const l = s.links
    if (l === undefined) return `${s.peerId.slice(-6)}: no link report`
    if (l.kept !== l.keptConnected) return `${s.peerId.slice(-6)} (${s.role}): ${l.keptConnected}/${l.kept} kept links connected`
    const role = roles.get(s.peerId)
    const want = l.members <= FULL_MESH_MAX_MEMBERS ? l.members - 1 : role === 'sclerotium' ? sclerotia - 1 : role === 'hyphae' ? 2 : 3
    if (l.kept !== want) return `${s.peerId.slice(-6)} (${role}): keeps ${l.kept} links, wants ${want} (${JSON.stringify(l.kinds)})`
  }
  return undefined
}

async function metricSum (node: TestNode, name: string): Promise<number> {
  const text = await node.api<string>('/metrics').catch(() => '')
  let sum = 0
  for (const line of String(text).split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop())
  return sum
}

/**
 * A CPU profile of a running daemon over `ms`: SIGUSR1 opens its inspector, the profiler runs
 * only for the window. The inspector's own traffic is on loopback HTTP, not in the node's libp2p
 * sockets, but its CPU is in the node's figure for this window.
 */
async function profileIdle (pid: number, ms: number, file: string): Promise<void> {
  process.kill(pid, 'SIGUSR1')
  const list = await waitFor(async () => await (await fetch('http://127.0.0.1:9229/json/list')).json() as Array<{ webSocketDebuggerUrl: string }>, { timeoutMs: 10_000, intervalMs: 200 })
  const ws = new WebSocket(list[0].webSocketDebuggerUrl)
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject })
  let id = 0
  const pending = new Map<number, (r: any) => void>()
  ws.onmessage = (e) => { const m = JSON.parse(String(e.data)); pending.get(m.id)?.(m.result); pending.delete(m.id) }
  const call = async (method: string, params: object = {}): Promise<any> => await new Promise((resolve) => { pending.set(++id, resolve); ws.send(JSON.stringify({ id, method, params })) })
  await call('Profiler.enable')
  await call('Profiler.setSamplingInterval', { interval: 1000 })
  await call('Profiler.start')
  await sleep(ms)
  const { profile } = await call('Profiler.stop')
  writeFileSync(file, JSON.stringify(profile))
  ws.close()
  console.error(`CPU profile of ${pid} over ${ms / 1000} s idle: ${file}`)
}

/** Gossip messages delivered to the node so far, by topic (mycelium_gossip_messages_in_total). */
async function gossipIn (node: TestNode): Promise<Map<string, number>> {
  const text = await node.api<string>('/metrics').catch(() => '')
  const out = new Map<string, number>()
  for (const line of String(text).split('\n')) {
    const m = /^mycelium_gossip_messages_in_total\{topic="([^"]*)"\} (\S+)/.exec(line)
    if (m !== null) out.set(m[1], Number(m[2]))
  }
  return out
}

async function main (): Promise<void> {
  const roles = new Map<string, Role>()
  // run as install.sh runs the daemon (a 1 MiB young generation), so RSS is what an installed node holds
  const env = { MYCELIUM_LOG_LEVEL: 'warn', MYCELIUM_ROLE_TIMING: ROLE_TIMING, NODE_OPTIONS: '--max-semi-space-size=1' }
  const cluster = new Cluster()
  let cleaned = false
  const cleanup = async (): Promise<void> => {
    if (cleaned) return
    cleaned = true
    await cluster.destroy().catch(() => {})
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void cleanup().then(() => process.exit(130)) })

  const rows: string[][] = []
  const network: string[][] = []
  const gossipRows: string[][] = []
  try {
    let sclerotia = 0
    const add = async (index: number, role: Role): Promise<TestNode> => {
      const node = cluster.newNode(`s${index}`, { env, startArgs: ['--role', role, ...ARGS], ...(CLI_PATH === undefined ? {} : { cliPath: CLI_PATH }) })
      if (index > 0) {
        await waitFor(async () => {
          const { invite } = await cluster.nodes[0].api<{ invite: string }>('/invites', 'POST', { ttlMs: 3_600_000, uses: 1 })
          const joined = await node.cli(['join', invite])
          if (joined.code !== 0) throw new Error(joined.stderr)
          return true
        }, { timeoutMs: 60_000, intervalMs: 2_000, what: `s${index} to join` })
      }
      await node.start()
      roles.set(node.peerId, role)
      return node
    }

    for (const n of SIZES) {
      const s = sclerotiaFor(n)
      const from = cluster.nodes.length
      const startedAt = Date.now()
      const plan: Role[] = []
      for (let i = from; i < n; i++) {
        if (sclerotia + plan.filter(r => r === 'sclerotium').length < s) plan.push('sclerotium')
        else plan.push(i % 6 === 5 ? 'hyphae' : 'rhizomorph')
      }
      try {
        if (from === 0) { await add(0, plan.shift()!); sclerotia++ }
        for (let i = cluster.nodes.length; i < n; i += BATCH) {
          const batch = plan.splice(0, Math.min(BATCH, n - i))
          await Promise.all(batch.map(async (role, k) => await add(i + k, role)))
          sclerotia += batch.filter(r => r === 'sclerotium').length
        }
      } catch (err) {
        // a size the machine cannot start is a finding too: the sizes measured so far are printed
        console.error(`N=${n}: the network could not grow to ${n} nodes (${(err as Error).message.split('\n')[0]}); larger sizes are not started`)
        break
      }
      const started = Date.now()
      const nodes = cluster.nodes.filter(x => x.running())
      console.error(`N=${n}: ${nodes.length} daemons started in ${((started - startedAt) / 1000).toFixed(0)} s (${s} sclerotia)`)

      // every node sees every role: its balance view counts n nodes and s sclerotia
      let seen = ''
      const rolesSeenS = await waitFor(async () => {
        const all = await statuses(nodes)
        const behind = all.filter(x => x.sclerotia?.nodes !== n || x.sclerotia?.count !== s)
        seen = `${all.length - behind.length}/${all.length} nodes see ${n} nodes and ${s} sclerotia`
        return behind.length === 0 ? (Date.now() - started) / 1000 : undefined
      }, { timeoutMs: 120_000, intervalMs: 3_000, what: 'every node to see every role' }).catch((err) => { console.error(`${(err as Error).message}: ${seen}`); return NaN })

      // topology: kept links connected, then unwanted links closed after their idle grace
      let why = ''
      const shapedS = await waitFor(async () => {
        why = shaped(await statuses(nodes), roles, s) ?? ''
        return why === '' ? (Date.now() - started) / 1000 : undefined
      }, { timeoutMs: 180_000, intervalMs: 3_000, what: 'the topology to follow the roles' }).catch((err) => { console.error(`${(err as Error).message}: ${why}`); return NaN })
      await sleep(SETTLE_S * 1000)
      const busy0 = machineBusy()

      // idle window: nothing is asked of the daemons
      const before = new Map<number, Sample>()
      const sockets0 = socketBytes()
      const gossip0 = await Promise.all(nodes.map(gossipIn))
      const epochSum0 = await metricSum(nodes[0], 'mycelium_bft_round_latency_seconds_sum')
      const epochCount0 = await metricSum(nodes[0], 'mycelium_bft_round_latency_seconds_count')
      for (const x of nodes) before.set(x.process!.pid!, { cpuS: cpuSeconds(x.process!.pid!), rxBytes: 0, txBytes: 0, at: Date.now() })
      const profiled = PROFILE_TO !== undefined && n === SIZES[0] ? nodes.find(x => roles.get(x.peerId) === PROFILE_ROLE) : undefined
      if (profiled !== undefined) await profileIdle(profiled.process!.pid!, IDLE_S * 1000, PROFILE_TO!)
      else await sleep(IDLE_S * 1000)
      const sockets1 = socketBytes()
      const gossip1 = await Promise.all(nodes.map(gossipIn))
      const busyPct = machineBusy(busy0)
      const epochSum1 = await metricSum(nodes[0], 'mycelium_bft_round_latency_seconds_sum')
      const epochCount1 = await metricSum(nodes[0], 'mycelium_bft_round_latency_seconds_count')
      const all = await statuses(nodes)
      const perRole = new Map<string, Array<{ conns: number, kept: number, rx: number, tx: number, rss: number, cpu: number }>>()
      for (const [k, x] of nodes.entries()) {
        const pid = x.process!.pid!
        const b = before.get(pid)!
        const seconds = (Date.now() - b.at) / 1000
        let rx = 0
        let tx = 0
        for (const [key, now] of sockets1.get(pid) ?? []) {
          const then = sockets0.get(pid)?.get(key) ?? { rx: 0, tx: 0 }
          rx += now.rx - then.rx
          tx += now.tx - then.tx
        }
        const role = roles.get(x.peerId) ?? 'unknown'
        const list = perRole.get(role) ?? []
        list.push({ conns: all[k].peers.length, kept: all[k].links?.kept ?? 0, rx: rx / seconds, tx: tx / seconds, rss: rssMiB(pid), cpu: 100 * (cpuSeconds(pid) - b.cpuS) / seconds })
        perRole.set(role, list)
      }
      // what the idle gossip is: messages delivered per node and second, by topic (mean of the nodes)
      const perTopic = new Map<string, number>()
      for (const [k, after] of gossip1.entries()) for (const [topic, count] of after) perTopic.set(topic, (perTopic.get(topic) ?? 0) + (count - (gossip0[k].get(topic) ?? 0)) / IDLE_S / nodes.length)
      gossipRows.push([String(n), [...perTopic].sort((a, b) => b[1] - a[1]).map(([t, r]) => `${t} ${fmt(r, 2)}`).join(', ')])
      for (const role of ['sclerotium', 'rhizomorph', 'hyphae']) {
        const list = perRole.get(role) ?? []
        if (list.length === 0) continue
        console.error(`N=${n} ${role}: ${JSON.stringify(list.map(r => ({ c: r.conns, k: r.kept, rx: Math.round(r.rx), tx: Math.round(r.tx), rss: Math.round(r.rss), cpu: Number(r.cpu.toFixed(1)) })))}`)
        rows.push([String(n), role, String(list.length), `${fmt(mean(list.map(r => r.conns)), 1)} (max ${Math.max(...list.map(r => r.conns))})`, fmt(mean(list.map(r => r.kept)), 1),
          fmt(median(list.map(r => r.rx))), fmt(median(list.map(r => r.tx))), fmt(mean(list.map(r => r.rss))), fmt(mean(list.map(r => r.cpu)), 1)])
      }

      // one new latent entry: from a rhizomorph to every node
      const writer = nodes.find(x => roles.get(x.peerId) === 'rhizomorph') ?? nodes[nodes.length - 1]
      const name = `bench-${n}`
      const t0 = Date.now()
      await writer.api('/spores/services', 'POST', { name, endpoints: ['/ip4/127.0.0.1/tcp/1'] })
      const has = async (x: TestNode, entry: string): Promise<boolean> => (await x.api<Array<{ key: string }>>('/spores?type=service')).some(e => e.key.endsWith(`/${entry}`))
      const convergedS = await waitFor(async () => (await Promise.all(nodes.map(async x => await has(x, name)))).every(Boolean) ? (Date.now() - t0) / 1000 : undefined,
        { timeoutMs: 60_000, intervalMs: 100, what: 'the entry on every node' }).catch(() => NaN)
      // every certified round on the founder since it started (epochs come every 30 s)
      const epochMs = epochCount1 > 0 ? 1000 * epochSum1 / epochCount1 : NaN
      void epochSum0
      void epochCount0

      // 10 % killed at once, then restarted: the topology heals, the entry written before survives
      let healS = NaN
      let entryKept = '-'
      if (n >= 20) {
        const victims = nodes.slice(1).sort(() => Math.random() - 0.5).slice(0, Math.ceil(n / 10))
        await Promise.all(victims.map(async v => { await v.kill() }))
        await sleep(3_000)
        const t1 = Date.now()
        await Promise.all(victims.map(async v => { await v.start() }))
        let why2 = ''
        healS = await waitFor(async () => {
          why2 = shaped(await statuses(nodes), roles, s) ?? ''
          return why2 === '' ? (Date.now() - t1) / 1000 : undefined
        }, { timeoutMs: HEAL_LIMIT_S * 1000, intervalMs: 1_000, what: 'the topology to heal' }).catch((err) => { console.error(`${(err as Error).message}: ${why2}`); return NaN })
        const kept = await waitFor(async () => (await Promise.all(nodes.map(async x => await has(x, name)))).every(Boolean), { timeoutMs: 30_000, intervalMs: 500 }).catch(() => false)
        entryKept = kept ? 'yes' : 'NO'
        console.error(`N=${n}: killed ${victims.length}, restarted; topology healed ${fmt(healS, 1)} s after the restart; entry on every node: ${entryKept}`)
      }
      network.push([String(n), String(s), fmt(rolesSeenS, 1), fmt(shapedS, 1), fmt(convergedS, 2), fmt(epochMs), fmt(healS, 1), entryKept, fmt(busyPct.pct)])
      console.error(`N=${n}: ${JSON.stringify(network[network.length - 1])}`)
      if (!Number.isFinite(shapedS)) {
        console.error(`N=${n}: the topology did not settle (${why}); larger sizes are not started`)
        break
      }
    }
  } finally {
    await cleanup()
  }

  const table = (head: string[], body: string[][]): string => {
    const widths = head.map((h, i) => Math.max(h.length, ...body.map(r => r[i].length)))
    const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i])).join('  ')
    return [line(head), line(widths.map(w => '-'.repeat(w))), ...body.map(line)].join('\n')
  }
  console.log(`\nPer node, idle ${IDLE_S} s after the topology settled (bundled daemons on loopback, ${SIZES.join('/')} nodes):\n`)
  console.log(table(['N', 'role', 'nodes', 'connections', 'kept links', 'in B/s (median)', 'out B/s (median)', 'RSS MiB', 'CPU %'], rows))
  console.log('\nIdle gossip messages delivered per node and second, by topic (mean of the nodes):\n')
  console.log(table(['N', 'messages/s by topic'], gossipRows))
  console.log('\nNetwork (seconds from the last start; heal from the restart of the killed 10 %):\n')
  console.log(table(['N', 'sclerotia', 'roles seen s', 'topology s', 'entry to all s', 'epoch round ms', 'heal s', 'entry kept', 'machine CPU %'], network))
}

await main()
