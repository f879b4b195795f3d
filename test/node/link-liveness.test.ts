// The failure detector that closes links to members cut off by the network: a peer that
// answers no ping is dropped; a peer that answers late, or a node whose own event loop
// stalled, keeps its link (libp2p's own monitor closed both, and a starting network churned).
// Pings are yamux's own ping frames, answered inside the peer's muxer, so a peer that is cut
// off or slow is made by the network between the two nodes: a loopback relay that stops
// forwarding (no FIN, no RST) or forwards every byte late.
import { describe, it, expect, afterEach } from 'vitest'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import { linkLiveness } from '../../node/host/link-liveness.ts'

const EVERY_MS = 200
const DEAD_AFTER_MS = 600

const nodes: Libp2p[] = []
const relays: LoopbackRelay[] = []
afterEach(async () => {
  await Promise.all(relays.splice(0).map(async r => { await r.close() }))
  await Promise.all(nodes.splice(0).map(async n => { await n.stop() }))
})

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

/** A plain peer: it answers pings in its muxer and watches nothing. */
async function peer (): Promise<Libp2p> {
  return await loopbackNode({ ping: ping() })
}

/** The network between two nodes: forwards TCP to a node, each byte `delayMs` late, until cut. */
interface LoopbackRelay { addrOf: (node: Libp2p) => string, cut: () => void, close: () => Promise<void> }

async function relayTo (target: Libp2p, delayMs = 0): Promise<LoopbackRelay> {
  const port = Number(/\/tcp\/(\d+)/.exec(target.getMultiaddrs()[0].toString())?.[1])
  const sockets = new Set<Socket>()
  let cut = false
  const forward = (from: Socket, to: Socket): void => {
    // a cut link drops what it carries and keeps both sockets open, as a pulled cable does
    from.on('data', (chunk: Buffer) => {
      if (cut) return
      if (delayMs === 0) to.write(chunk)
      else setTimeout(() => { if (!cut && !to.destroyed) to.write(chunk) }, delayMs)
    })
    from.on('close', () => { if (!cut) to.destroy() })
    from.on('error', () => {})
  }
  const server: Server = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1')
    sockets.add(inbound).add(outbound)
    forward(inbound, outbound)
    forward(outbound, inbound)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const relayPort = (server.address() as { port: number }).port
  relays.push({
    addrOf: (node) => `/ip4/127.0.0.1/tcp/${relayPort}/p2p/${node.peerId.toString()}`,
    cut: () => { cut = true },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise(resolve => server.close(resolve))
    }
  })
  return relays[relays.length - 1]
}

async function linked (a: Libp2p, b: Libp2p, through?: LoopbackRelay): Promise<void> {
  await a.dial(through === undefined ? b.getMultiaddrs()[0] : multiaddr(through.addrOf(b)))
}

const connected = (a: Libp2p, b: Libp2p): boolean => a.getConnections(b.peerId).length > 0
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

describe('link liveness', () => {
  it('closes the link to a peer cut off by the network, after the dead line and not before', async () => {
    const a = await watcher()
    const b = await peer()
    const network = await relayTo(b)
    await linked(a, b, network)
    await sleep(3 * EVERY_MS)
    expect(connected(a, b)).toBe(true)
    network.cut()
    const cutAt = Date.now()
    // the last answer came at most one interval before the cut
    await sleep(DEAD_AFTER_MS - EVERY_MS - 100)
    expect(connected(a, b)).toBe(true)
    const deadline = Date.now() + 5_000
    while (connected(a, b) && Date.now() < deadline) await sleep(50)
    expect(connected(a, b)).toBe(false)
    expect(Date.now() - cutAt).toBeLessThan(DEAD_AFTER_MS + 3 * EVERY_MS + 500)
  })

  it('keeps a peer that answers every ping late (a busy peer is not a dead one)', async () => {
    const a = await watcher()
    const b = await peer()
    // every answer comes one and a half intervals after its ping (one ping is in flight at a
    // time, so answers come up to 2.5 intervals apart, and the dead line is 3)
    const slow = await relayTo(b, 0.75 * EVERY_MS)
    await linked(a, b, slow)
    await sleep(10 * DEAD_AFTER_MS / 2)
    expect(connected(a, b)).toBe(true)
  })

  it('pings in the muxer: no stream is opened on the ping protocol', async () => {
    const a = await watcher()
    const b = await loopbackNode({})
    let pingStreams = 0
    await b.handle('/ipfs/ping/1.0.0', (stream) => { pingStreams++; stream.abort(new Error('not answered here')) })
    await linked(a, b)
    await sleep(3 * DEAD_AFTER_MS)
    expect(connected(a, b)).toBe(true)
    expect(pingStreams).toBe(0)
  })

  it('does not count its own stalled event loop against a peer', async () => {
    const a = await watcher()
    const b = await peer()
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
