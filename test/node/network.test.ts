import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Cluster, TestNode, waitFor, sleep } from '../harness/index.ts'

describe('a five-node network of real processes', () => {
  const cluster = new Cluster()
  let nodes: TestNode[]

  beforeAll(async () => {
    nodes = await cluster.startNetwork(5)
  }, 120_000)
  afterAll(async () => { await cluster.destroy() })

  it('every node sees every other in `peers`, with roles and addresses', async () => {
    await cluster.waitForFullMesh(30_000)
    const peers = await nodes[3].peers()
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
    // gossipsub builds its mesh on heartbeats: publish until the first delivery, then check all
    const text = `hello from n1 ${Date.now()}`
    await waitFor(async () => {
      await nodes[1].cli(['gossip', 'pub', 'chat', text])
      const got = await Promise.all(nodes.filter(n => n !== nodes[1]).map(async n => (await n.cliJson(['gossip', 'messages', 'chat'])).some((m: any) => m.text === text && m.from === nodes[1].peerId)))
      return got.every(Boolean)
    }, { timeoutMs: 20_000, intervalMs: 1000, what: 'the message on every node' })
    const metrics = await nodes[1].cli(['metrics'])
    expect(metrics.code).toBe(0)
    expect(metrics.stdout).toMatch(/mycelium_gossip_messages_out_total\{topic="app"\} [1-9]/)
  })

  it('refuses a node of another network: it appears in no peer list and is counted', async () => {
    const stranger = cluster.newNode('stranger')
    const target = (await nodes[0].status()).addrs[0]
    await stranger.start(['--bootstrap', target])
    await waitFor(async () => /mycelium_rejected_connections_total\{reason="other-network"\} [1-9]/.test((await nodes[0].cli(['metrics'])).stdout), { timeoutMs: 15_000, what: 'the refusal to be counted' })
    await sleep(1000)
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
