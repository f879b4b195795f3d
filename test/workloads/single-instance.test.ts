// A single-instance application (`--max 1`) on four sclerotium daemons, each in its own network
// namespace: the node running it is cut off from the others, the others start it again once
// its lease has lapsed, and the cut node has frozen its copy before then; after the heal it sees
// the newer term and stops for good. Every running copy appends its name and the time to one
// trace file every 25 ms: two copies running at once would interleave their lines.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, waitFor, capabilities, titled, type TestNode } from '../harness/index.ts'
import { waitForEpoch } from '../consensus/bft-daemon-nodes.ts'

const { netns } = capabilities()
const ARGS = ['--role', 'sclerotium', '--epoch-interval-s', '2', '--bft-f', '1', '--http-listen', 'off']

interface AppStatus { instances: Array<{ peerId: string, health: string }>, voters?: string[], local?: { lease?: { term: number, holds: boolean } } }

function soloApp (trace: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'myc-solo-'))
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'solo', version: '1.0.0', kind: 'service', command: 'node', args: ['solo.mjs'], env: { TRACE: trace }, resources: { cpuMillis: 100, memoryMb: 64 } }))
  // each copy names itself at random: in a PID namespace of its own every copy is pid 2
  writeFileSync(join(dir, 'solo.mjs'), "import { appendFileSync } from 'node:fs'\nconst me = Math.random().toString(36).slice(2)\nsetInterval(() => { appendFileSync(process.env.TRACE, `${me} ${Date.now()}\\n`) }, 25)\n")
  return dir
}

/** The trace as runs of one writer: concurrent copies show as many short alternating runs. */
function runsOf (trace: string): Array<{ pid: string, from: number, to: number, lines: number }> {
  if (!existsSync(trace)) return []
  const lines = readFileSync(trace, 'utf8').trim().split('\n').filter(l => l !== '').map(l => { const [pid, at] = l.split(' '); return { pid, at: Number(at) } })
  const runs: Array<{ pid: string, from: number, to: number, lines: number }> = []
  for (const l of lines) {
    const last = runs.at(-1)
    if (last?.pid === l.pid) { last.to = l.at; last.lines++ } else runs.push({ pid: l.pid, from: l.at, to: l.at, lines: 1 })
  }
  return runs
}

async function statusOf (node: TestNode): Promise<AppStatus | undefined> {
  try { return await node.api<AppStatus>('/apps/status?name=solo') } catch { return undefined }
}

describe.skipIf(netns.missing !== undefined)(titled('a single-instance application across a partition', netns), () => {
  let cluster: Cluster
  beforeAll(() => { cluster = new Cluster({ netns: true, node: () => ({ startArgs: ARGS }) }) })
  afterAll(async () => { await cluster?.destroy() })

  it('never runs two copies: the cut holder freezes before the others take over, and stands down after the heal', async () => {
    const nodes = await cluster.startNetwork(4)
    await cluster.waitForFullMesh(60_000)
    const [admin] = nodes
    await waitForEpoch([admin], 1, 90_000)
    const trace = join(mkdtempSync(join(tmpdir(), 'myc-trace-')), 'trace')
    const file = join(mkdtempSync(join(tmpdir(), 'myc-spore-')), 'solo.spore')
    expect((await admin.cli(['app', 'pack', soloApp(trace), '--out', file])).code).toBe(0)
    const { digest } = await admin.cliJson<{ digest: string }>(['app', 'publish', file])
    const planned = await admin.cliJson<{ voters: string[] }>(['app', 'plan', 'solo', '--digest', digest, '--min', '1', '--max', '1'])
    expect(planned.voters.length).toBeGreaterThanOrEqual(3)

    let holder: TestNode | undefined
    await waitFor(async () => {
      for (const n of nodes) if ((await statusOf(n))?.local?.lease?.holds === true) { holder = n; return true }
      return false
    }, { timeoutMs: 60_000, intervalMs: 500, what: 'a node holding the lease of solo' })
    await waitFor(() => runsOf(trace).length > 0 && runsOf(trace)[0].lines > 20, { timeoutMs: 20_000, intervalMs: 250, what: 'the first copy running' })
    const firstPid = runsOf(trace)[0].pid

    const cutAt = Date.now()
    cluster.lab!.cut(holder!.options.host!)
    const others = nodes.filter(n => n !== holder)
    await waitFor(() => runsOf(trace).some(r => r.pid !== firstPid && r.lines > 20), { timeoutMs: 60_000, intervalMs: 250, what: 'a copy running on the other side' })
    console.log(`cut of the holder → another copy running: ${runsOf(trace).find(r => r.pid !== firstPid)!.from - cutAt} ms`)
    const second = runsOf(trace).find(r => r.pid !== firstPid)!
    // the first copy wrote its last line before the second its first
    const firstLast = Math.max(...runsOf(trace).filter(r => r.pid === firstPid).map(r => r.to))
    expect(firstLast).toBeLessThan(second.from)
    const taker = await (async () => { for (const n of others) if ((await statusOf(n))?.local?.lease?.holds === true) return n })()
    expect(taker).toBeDefined()

    cluster.lab!.heal(holder!.options.host!)
    await cluster.waitForFullMesh(90_000)
    // the healed holder learns of the newer term and stops its frozen copy; whichever node is
    // the best host ends up running it, handing over through the lease
    await waitFor(async () => {
      const held = await Promise.all(nodes.map(async n => (await statusOf(n))?.local?.lease?.holds === true))
      return held.filter(Boolean).length === 1
    }, { timeoutMs: 60_000, intervalMs: 500, what: 'one lease holder after the heal' })
    await new Promise(resolve => setTimeout(resolve, 3000))

    const runs = runsOf(trace)
    console.log(`runs of writers: ${runs.map(r => `${r.pid}×${r.lines}`).join(' → ')}`)
    // two copies at once would alternate line by line; each handover is one change of writer
    expect(runs.length).toBeLessThanOrEqual(4)
    for (let i = 1; i < runs.length; i++) expect(runs[i].from, 'a copy started before the previous one wrote its last line').toBeGreaterThan(runs[i - 1].to)
    expect(runs.filter(r => r.pid === firstPid).length).toBe(1)
  })
})
