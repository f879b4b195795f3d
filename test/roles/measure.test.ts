import { describe, it, expect, afterEach } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { measureNetwork, ProbeRefusedError, encodeProbeRequest, decodeProbeRequest, InvalidProbeMessageError } from '../../roles/index.ts'
import { encodeCanonical } from '../../crypto/index.ts'
import { startNode, PROBE_PROTOCOL, type RoleTestNode } from './nodes.ts'

describe('probe requests are validated before anything is done', () => {
  it('accepts bounded requests and rejects everything else', () => {
    expect(decodeProbeRequest(encodeCanonical({ op: 'echo', rounds: 4 }))).toEqual({ op: 'echo', rounds: 4 })
    const bad = [
      { op: 'echo', rounds: 17 }, { op: 'echo', rounds: 0 }, { op: 'echo', rounds: 1.5 },
      { op: 'download', bytes: 1024 * 1024 + 1 }, { op: 'download', bytes: 10, extra: true },
      { op: 'dialback', addrs: [] }, { op: 'dialback', addrs: ['not an address'] },
      { op: 'dialback', addrs: Array.from({ length: 5 }, (_, i) => `/ip4/127.0.0.1/tcp/${4000 + i}`) },
      { op: 'flood' }, ['echo']
    ]
    for (const request of bad) expect(() => decodeProbeRequest(encodeCanonical(request))).toThrow(InvalidProbeMessageError)
    expect(() => decodeProbeRequest(new Uint8Array([0xff, 0x00]))).toThrow(InvalidProbeMessageError)
  })
})

describe('probe protocol between two real libp2p nodes', () => {
  const nodes: RoleTestNode[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

  async function pair (): Promise<[RoleTestNode, RoleTestNode]> {
    const a = (await startNode()).node
    const b = (await startNode()).node
    nodes.push(a, b)
    await a.dial(b.getMultiaddrs()[0])
    return [a, b]
  }

  it('measures a positive round-trip time from several echoes', async () => {
    const [a, b] = await pair()
    const rtt = await a.services.probe.measureRtt(b.peerId, { rounds: 5 })
    expect(rtt.samples).toHaveLength(5)
    expect(rtt.rttMs).toBeGreaterThan(0)
  })

  it('measures throughput over exactly the bytes asked for, never more than 1 MiB', async () => {
    const [a, b] = await pair()
    const small = await a.services.probe.measureThroughput(b.peerId, { bytes: 200_000 })
    expect(small.bytes).toBe(200_000)
    expect(small.mbps).toBeGreaterThan(0)
    const capped = await a.services.probe.measureThroughput(b.peerId, { bytes: 50 * 1024 * 1024 })
    expect(capped.bytes).toBe(1024 * 1024)
  })

  it('refuses a request for more than 1 MiB sent by a client that ignores the bound', async () => {
    const [a, b] = await pair()
    const stream = await a.dialProtocol(b.peerId, PROBE_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(encodeProbeRequest({ op: 'download', bytes: 64 * 1024 * 1024 }))
    await expect(lp.read({ signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
  })

  it('dials back an address that listens and reports one nobody listens on as unreachable', async () => {
    const [a, b] = await pair()
    const listening = a.getMultiaddrs()[0]
    const results = await a.services.probe.requestDialBack(b.peerId, [listening, multiaddr('/ip4/127.0.0.1/tcp/1')])
    expect(results[0]).toEqual({ addr: listening.toString(), reachable: true })
    expect(results[1].reachable).toBe(false)
    expect(results[1].addr).toBe('/ip4/127.0.0.1/tcp/1')
    // the dial-back connection was closed again; the original one stays
    expect(b.getConnections(a.peerId)).toHaveLength(1)
  })

  it('will not dial an IP other than the one the request came from', async () => {
    const [a, b] = await pair()
    const results = await a.services.probe.requestDialBack(b.peerId, [multiaddr('/ip4/127.0.0.2/tcp/4001'), multiaddr('/ip4/192.0.2.1/tcp/4001')])
    expect(results.map(r => r.reachable)).toEqual([false, false])
    expect(results.every(r => /not the address the request came from/.test(r.error ?? ''))).toBe(true)
  })

  it('rate-limits dial-backs per peer', async () => {
    const a = (await startNode()).node
    nodes.push(a)
    const { createLibp2p } = await import('libp2p')
    const { tcp } = await import('@libp2p/tcp')
    const { noise } = await import('@libp2p/noise')
    const { yamux } = await import('@libp2p/yamux')
    const { networkProbe } = await import('../../roles/index.ts')
    const strict = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { probe: networkProbe({ protocol: PROBE_PROTOCOL, peerCooldownMs: 60_000 }) }
    })
    try {
      await a.dial(strict.getMultiaddrs()[0])
      await a.services.probe.requestDialBack(strict.peerId, [a.getMultiaddrs()[0]])
      await expect(a.services.probe.requestDialBack(strict.peerId, [a.getMultiaddrs()[0]])).rejects.toThrow(ProbeRefusedError)
    } finally {
      await strict.stop()
    }
  })

  it('sums up reachability, RTT and throughput against the connected peers', async () => {
    const [a, b] = await pair()
    const c = (await startNode()).node
    nodes.push(c)
    await a.dial(c.getMultiaddrs()[0])
    const facts = await measureNetwork({ probe: a.services.probe, peers: [b.peerId, c.peerId], addrs: a.getMultiaddrs(), throughputBytes: 128 * 1024 })
    expect(facts.reachable).toBe(true)
    expect(facts.peers).toBe(2)
    expect(facts.rttMs).toBeGreaterThan(0)
    expect(facts.throughputMbps).toBeGreaterThan(0)

    const unreachable = await measureNetwork({ probe: a.services.probe, peers: [b.peerId], addrs: [multiaddr('/ip4/127.0.0.1/tcp/1')] })
    expect(unreachable.reachable).toBe(false)
    const alone = await measureNetwork({ probe: a.services.probe, peers: [], addrs: a.getMultiaddrs() })
    expect(alone.reachable).toBe(null)
  })
})
