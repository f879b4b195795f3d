// Turns probe exchanges with a few peers into this node's NetworkFacts: median RTT, best
// throughput, and whether any peer could dial one of our addresses back.
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { NetworkFacts } from '../probe/hardware-facts.ts'
import type { NetworkProbe } from './network-probe.ts'
import { MAX_DIAL_BACK_ADDRS } from './probe-messages.ts'

export interface MeasureNetworkOptions {
  probe: Pick<NetworkProbe, 'measureRtt' | 'measureThroughput' | 'requestDialBack'>
  /** Connected peers to measure against; the first `maxPeers` are used. */
  peers: PeerId[]
  /** This node's own listen/announce addresses, offered for dial-back. */
  addrs: Multiaddr[]
  maxPeers?: number
  /** Peers asked to dial back (each dial-back costs the peer a connection). */
  maxDialBackPeers?: number
  throughputBytes?: number
  signal?: AbortSignal
  now?: () => number
}

function median (values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function isLoopback (addr: Multiaddr): boolean {
  const ip = addr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value
  return ip === undefined || ip.startsWith('127.') || ip === '::1'
}

export async function measureNetwork (options: MeasureNetworkOptions): Promise<NetworkFacts> {
  const now = options.now ?? Date.now
  const peers = options.peers.slice(0, options.maxPeers ?? 3)
  const dialBackPeers = options.maxDialBackPeers ?? 2
  // the peer only dials the IP we came from: offer routable addresses first
  const offered = [...options.addrs].filter(a => !a.toString().includes('/p2p-circuit')).sort((a, b) => Number(isLoopback(a)) - Number(isLoopback(b))).slice(0, MAX_DIAL_BACK_ADDRS)

  const perPeer = await Promise.all(peers.map(async (peer, i) => {
    const out: { rtt?: number, mbps?: number, reachable?: boolean } = {}
    try { out.rtt = (await options.probe.measureRtt(peer, { signal: options.signal })).rttMs } catch {}
    try { out.mbps = (await options.probe.measureThroughput(peer, { bytes: options.throughputBytes, signal: options.signal })).mbps } catch {}
    if (i < dialBackPeers && offered.length > 0) {
      try { out.reachable = (await options.probe.requestDialBack(peer, offered, { signal: options.signal })).some(r => r.reachable) } catch {}
    }
    return out
  }))

  const answers = perPeer.filter(p => p.reachable !== undefined)
  const rtt = median(perPeer.flatMap(p => p.rtt === undefined ? [] : [p.rtt]))
  const mbps = perPeer.flatMap(p => p.mbps === undefined ? [] : [p.mbps])
  return {
    reachable: answers.length === 0 ? null : answers.some(p => p.reachable === true),
    rttMs: rtt === null ? null : Math.round(rtt * 100) / 100,
    throughputMbps: mbps.length === 0 ? null : Math.round(Math.max(...mbps) * 10) / 10,
    peers: perPeer.filter(p => p.rtt !== undefined || p.mbps !== undefined || p.reachable !== undefined).length,
    measuredAt: now()
  }
}
