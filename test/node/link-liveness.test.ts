// The failure detector that closes links to members cut off by the network: a peer that
// answers no ping is dropped; a peer that answers late, or a node whose own event loop
// stalled, keeps its link (libp2p's own monitor closed both, and a starting network churned).
import { describe, it, expect, afterEach } from 'vitest'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { ping } from '@libp2p/ping'
import { linkLiveness } from '../../node/host/link-liveness.ts'

const PING = '/ipfs/ping/1.0.0'
const EVERY_MS = 200
const DEAD_AFTER_MS = 600

type Answer = 'echo' | 'never' | { lateMs: number }

const nodes: Libp2p[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

/** A loopback node with these services and no libp2p connection monitor. */
async function loopbackNode (services: Record<string, (components: any) => unknown>): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    services
  })
  nodes.push(node)
  return node
}

/** A node that pings its links with the liveness service. */
async function watcher (): Promise<Libp2p> {
  return await loopbackNode({ ping: ping(), liveness: linkLiveness({ pingEveryMs: EVERY_MS, deadAfterMs: DEAD_AFTER_MS }) })
}

/** A peer that answers pings as told: at once, never (cut off), or late. */
async function peer (answer: Answer): Promise<Libp2p> {
  const node = await loopbackNode(answer === 'echo' ? { ping: ping() } : {})
  if (answer !== 'echo') {
    await node.handle(PING, async (stream) => {
      for await (const chunk of stream) {
        if (answer === 'never') continue
        await new Promise(resolve => setTimeout(resolve, answer.lateMs))
        stream.send(chunk.subarray())
      }
    }, { maxInboundStreams: 64 })
  }
  return node
}

async function linked (a: Libp2p, b: Libp2p): Promise<void> {
  await a.dial(b.getMultiaddrs()[0])
}

const connected = (a: Libp2p, b: Libp2p): boolean => a.getConnections(b.peerId).length > 0
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

describe('link liveness', () => {
  it('closes the link to a peer that answers no ping, after the dead line and not before', async () => {
    const a = await watcher()
    const silent = await peer('never')
    const openedAt = Date.now()
    await linked(a, silent)
    await sleep(DEAD_AFTER_MS - 200)
    expect(connected(a, silent)).toBe(true)
    const deadline = Date.now() + 5_000
    while (connected(a, silent) && Date.now() < deadline) await sleep(50)
    expect(connected(a, silent)).toBe(false)
    const closedAfter = Date.now() - openedAt
    expect(closedAfter).toBeGreaterThan(DEAD_AFTER_MS)
    expect(closedAfter).toBeLessThan(DEAD_AFTER_MS + 3 * EVERY_MS + 500)
  })

  it('keeps a peer that answers every ping late (a busy peer is not a dead one)', async () => {
    const a = await watcher()
    const busy = await peer({ lateMs: 2 * EVERY_MS })
    await linked(a, busy)
    await sleep(10 * DEAD_AFTER_MS / 2)
    expect(connected(a, busy)).toBe(true)
  })

  it('does not count its own stalled event loop against a peer', async () => {
    const a = await watcher()
    const b = await peer('echo')
    await linked(a, b)
    await sleep(3 * EVERY_MS)
    // both nodes live in this process, so nothing answers while the loop is blocked
    const until = Date.now() + 3 * DEAD_AFTER_MS
    while (Date.now() < until) { /* a stall: the loop runs nothing */ }
    await sleep(4 * EVERY_MS)
    expect(connected(a, b)).toBe(true)
  })

  it('answers the pings of others: each side of a link watches it', async () => {
    const a = await watcher()
    const b = await watcher()
    await linked(a, b)
    await sleep(3 * DEAD_AFTER_MS)
    expect(connected(a, b)).toBe(true)
    expect(connected(b, a)).toBe(true)
  })
})
