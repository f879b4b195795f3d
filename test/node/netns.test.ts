import { describe, it, expect, afterAll } from 'vitest'
import { Cluster, capabilities, titled, waitFor } from '../harness/index.ts'

const { netns } = capabilities()

describe.skipIf(netns.missing !== undefined)(titled('nodes on separate hosts (network namespaces)', netns), () => {
  let cluster: Cluster | undefined
  afterAll(async () => { await cluster?.destroy() })

  it('join across hosts, lose each other when a link is cut, and reconnect after heal', async () => {
    cluster = new Cluster({ netns: true })
    const [a, b, c] = await cluster.startNetwork(3)
    await cluster.waitForFullMesh(30_000)
    const status = await b.status()
    expect(status.addrs.some((addr: string) => addr.startsWith(`/ip4/${cluster!.lab!.hosts[1].address}/`))).toBe(true)

    const cHost = cluster.lab!.hosts[2]
    cluster.lab!.cut(cHost)
    await waitFor(async () => !(await a.peers()).some(p => p.peerId === c.peerId), { timeoutMs: 40_000, what: 'the cut host to drop out' })
    expect((await a.peers()).map(p => p.peerId)).toContain(b.peerId)

    cluster.lab!.heal(cHost)
    await waitFor(async () => (await c.peers()).length === 2, { timeoutMs: 40_000, what: 'the healed host to reconnect' })
  }, 150_000)
})
