import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Cluster, TestNode, waitFor, NODE, REPO_ROOT } from '../harness/index.ts'

describe('a five-node network of real processes', () => {
  const cluster = new Cluster()
  let nodes: TestNode[]

  beforeAll(async () => {
    nodes = await cluster.startNetwork(5)
  }, 120_000)
  afterAll(async () => { await cluster.destroy() })

  it('every node sees every other in `peers`, with roles and addresses', async () => {
    await cluster.waitForFullMesh(30_000)
    // `peers` lists the links held now, and once in a fresh CI run one was missing just after the
    // mesh was whole (a link closed and dialled again): read the listing until it is whole
    const peers = await waitFor(async () => {
      const listed = await nodes[3].peers()
      return listed.length === 4 ? listed : undefined
    }, { timeoutMs: 30_000, intervalMs: 500, what: 'nodes[3] listing its four peers' })
    expect(peers).toHaveLength(4)
    for (const p of peers) {
      expect(['sclerotium', 'rhizomorph', 'hyphae']).toContain(p.role)
      expect(p.addrs.length).toBeGreaterThan(0)
    }
    const status = await nodes[2].status()
    expect(status.networkId).toBe((await nodes[0].status()).networkId)
    expect(Object.keys(status).sort()).toEqual(expect.arrayContaining(['peerId', 'networkId', 'role', 'addrs', 'peers', 'uptimeS']))
  })

  it('a gossip message published by one node reaches all the others', async () => {
    for (const n of nodes) expect((await n.cli(['gossip', 'sub', 'chat'])).code).toBe(0)
    // gossipsub builds its mesh on heartbeats: publish until the first delivery, then check all.
    // The first publication goes through the CLI; the polling loop republishes and reads through
    // the admin API the CLI calls (a CLI process per poll costs about a second of CPU)
    const text = `hello from n1 ${Date.now()}`
    expect((await nodes[1].cli(['gossip', 'pub', 'chat', text])).code).toBe(0)
    const others = nodes.filter(n => n !== nodes[1])
    const holds = async (n: TestNode): Promise<boolean> => (await n.api<any[]>('/gossip/messages?topic=chat')).some(m => m.text === text && m.from === nodes[1].peerId)
    await waitFor(async () => {
      if ((await Promise.all(others.map(holds))).every(Boolean)) return true
      await nodes[1].api('/gossip/publish', 'POST', { topic: 'chat', message: text })
      return false
    }, { timeoutMs: 20_000, intervalMs: 1000, what: 'the message on every node' })
    expect((await nodes[4].cliJson(['gossip', 'messages', 'chat'])).some((m: any) => m.text === text && m.from === nodes[1].peerId)).toBe(true)
    const metrics = await nodes[1].cli(['metrics'])
    expect(metrics.code).toBe(0)
    expect(metrics.stdout).toMatch(/mycelium_gossip_messages_out_total\{topic="app"\} [1-9]/)
  })

  it('a member sending rosters of made-up peers makes no node store or dial them', async () => {
    const liar = cluster.newNode('liar')
    await cluster.join(liar, nodes[0])
    const target = (await nodes[2].status()).addrs.find((a: string) => a.includes('/tcp/') && !a.includes('/ws')) as string
    const report = await new Promise<{ peerId: string, fakes: string[] }>((resolve, reject) => {
      execFile(NODE, [join(REPO_ROOT, 'test/node/roster-liar.ts'), '--home', liar.home, target],
        { timeout: 60_000, encoding: 'utf8' }, (err, stdout, stderr) => { if (err !== null) reject(new Error(`${err.message}\n${stderr}`)); else resolve(JSON.parse(stdout)) })
    })
    expect(report.fakes).toHaveLength(1024)
    const fakes = new Set(report.fakes)
    // the known-members book is saved a few seconds after it changes: the liar itself is in it
    await waitFor(() => Object.keys(JSON.parse(readFileSync(join(nodes[2].home, 'known-peers.json'), 'utf8'))).includes(report.peerId), { timeoutMs: 10_000, what: 'the liar to be remembered' })
    const known = Object.keys(JSON.parse(readFileSync(join(nodes[2].home, 'known-peers.json'), 'utf8')))
    expect(known.filter(id => fakes.has(id))).toEqual([])
    expect(known.length).toBeLessThan(10)
    expect((await nodes[2].peers()).some((p: any) => fakes.has(p.peerId))).toBe(false)
  })

  it('refuses a node of another network: it appears in no peer list and is counted', async () => {
    const stranger = cluster.newNode('stranger')
    const target = (await nodes[0].status()).addrs[0]
    await stranger.start(['--bootstrap', target])
    await waitFor(async () => /mycelium_rejected_connections_total\{reason="other-network"\} [1-9]/.test(await nodes[0].api<string>('/metrics')), { timeoutMs: 15_000, what: 'the refusal to be counted' })
    // both ends run the handshake and each ends it once, verified or refused, and only a verified
    // peer is listed: once the stranger has recorded its own side of the refusal, the attempt is
    // over at both ends and a wrongly admitted stranger would be listed now
    await waitFor(async () => (await stranger.api<any[]>('/rejected')).some(r => r.peerId === nodes[0].peerId), { timeoutMs: 15_000, what: 'the stranger to record its side of the refusal' })
    for (const n of nodes) expect((await n.peers()).map(p => p.peerId)).not.toContain(stranger.peerId)
    expect(await stranger.peers()).toEqual([])
    const rejected = await nodes[0].cliJson(['network', 'rejected'])
    expect(rejected.some((r: any) => r.peerId === stranger.peerId && /network/.test(r.reason))).toBe(true)
    await stranger.stop()
  })

  it('a node restarted after SIGKILL keeps its peer id and rejoins', async () => {
    const victim = nodes[4]
    const before = victim.peerId
    await victim.kill()
    await waitFor(async () => !(await nodes[0].peers()).some(p => p.peerId === before), { timeoutMs: 20_000, what: 'the others to notice' })
    await victim.start()
    expect(victim.peerId).toBe(before)
    await waitFor(async () => (await victim.peers()).length === 4, { timeoutMs: 20_000, what: 'the restarted node to rejoin everyone' })
    await waitFor(async () => (await nodes[0].peers()).some(p => p.peerId === before), { timeoutMs: 10_000, what: 'the founder to see it again' })
  })

  it('stops gracefully on `mycelium stop` and on SIGTERM with exit code 0', async () => {
    expect(await nodes[3].stop()).toBe(0)
    expect(nodes[3].running()).toBe(false)
    nodes[2].process!.kill('SIGTERM')
    expect(await nodes[2].exited).toBe(0)
    const r = await nodes[2].cli(['status'])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/no daemon is running/)
  })
})
