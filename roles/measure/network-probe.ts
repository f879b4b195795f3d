// The probe protocol: round-trip time, throughput and dial-back reachability between
// members. Every operation is bounded in bytes, rounds and time, and the expensive ones
// (download, dial-back) are rate-limited per peer and in total. A dial-back only ever dials
// the IP the request came from, so no peer can use this node to scan someone else.
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream, StreamHandler, StreamHandlerOptions, AbortOptions, Startable } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { randomBytesOf, equalBytes } from '../../crypto/index.ts'
import {
  encodeProbeRequest, decodeProbeRequest, encodeHeader, decodeHeader, encodeDialBackResults, decodeDialBackResults,
  MAX_ECHO_ROUNDS, MAX_ECHO_FRAME, MAX_DOWNLOAD_BYTES, DOWNLOAD_CHUNK, MAX_CONTROL_FRAME, MAX_DIAL_BACK_ADDRS, InvalidProbeMessageError,
  type DialBackResult
} from './probe-messages.ts'

export interface NetworkProbeComponents {
  registrar: {
    handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
    unhandle: (protocol: string) => Promise<void>
  }
  connectionManager: {
    openStream: (peer: PeerId, protocol: string, options?: AbortOptions & { runOnLimitedConnection?: boolean }) => Promise<Stream>
    openConnection: (peer: Multiaddr, options?: AbortOptions & { force?: boolean }) => Promise<Connection>
  }
}

export interface NetworkProbeInit {
  /** Full protocol id, e.g. `/mycelium/<networkId>/probe/1.0.0`. */
  protocol: string
  /** Bound on every inbound stream. */
  timeoutMs?: number
  /** Bound on each dial-back dial. */
  dialBackTimeoutMs?: number
  /** A peer gets at most one download and one dial-back per this interval. */
  peerCooldownMs?: number
  maxConcurrentDownloads?: number
  maxConcurrentDialBacks?: number
}

export class ProbeRefusedError extends Error {
  readonly name = 'ProbeRefusedError'
}

export interface RttMeasurement { rttMs: number, samples: number[] }
export interface ThroughputMeasurement { bytes: number, ms: number, mbps: number }

const COOLDOWN_PEERS_KEPT = 1024

function ipOf (addr: Multiaddr): string | undefined {
  const ip = addr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')
  return ip?.value
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export class NetworkProbe implements Startable {
  readonly protocol: string
  private readonly components: NetworkProbeComponents
  private readonly timeoutMs: number
  private readonly dialBackTimeoutMs: number
  private readonly cooldownMs: number
  private readonly maxDownloads: number
  private readonly maxDialBacks: number
  private activeDownloads = 0
  private activeDialBacks = 0
  private readonly lastServed = new Map<string, number>()
  private started = false

  constructor (components: NetworkProbeComponents, init: NetworkProbeInit) {
    this.components = components
    this.protocol = init.protocol
    this.timeoutMs = init.timeoutMs ?? 15_000
    this.dialBackTimeoutMs = init.dialBackTimeoutMs ?? 5_000
    this.cooldownMs = init.peerCooldownMs ?? 5_000
    this.maxDownloads = init.maxConcurrentDownloads ?? 2
    this.maxDialBacks = init.maxConcurrentDialBacks ?? 2
  }

  readonly [Symbol.toStringTag] = 'mycelium:network-probe'

  async start (): Promise<void> {
    await this.components.registrar.handle(this.protocol, (stream, connection) => { void this.answer(stream, connection) }, { maxInboundStreams: 4, maxOutboundStreams: 4, runOnLimitedConnection: false })
    this.started = true
  }

  async stop (): Promise<void> {
    await this.components.registrar.unhandle(this.protocol)
    this.started = false
  }

  isStarted (): boolean {
    return this.started
  }

  private coolingDown (peer: string, op: string): boolean {
    const key = `${op}:${peer}`
    const now = Date.now()
    const last = this.lastServed.get(key)
    if (last !== undefined && now - last < this.cooldownMs) return true
    this.lastServed.delete(key)
    this.lastServed.set(key, now)
    if (this.lastServed.size > COOLDOWN_PEERS_KEPT) this.lastServed.delete(this.lastServed.keys().next().value as string)
    return false
  }

  private async answer (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(this.timeoutMs)
    const lp = lpStream(stream, { maxDataLength: MAX_CONTROL_FRAME })
    try {
      const request = decodeProbeRequest((await lp.read({ signal })).subarray())
      const peer = connection.remotePeer.toString()
      if (request.op === 'echo') {
        for (let i = 0; i < request.rounds; i++) {
          const frame = await lp.read({ signal })
          if (frame.byteLength > MAX_ECHO_FRAME) throw new InvalidProbeMessageError('echo frame too large')
          await lp.write(frame, { signal })
        }
      } else if (request.op === 'download') {
        if (this.activeDownloads >= this.maxDownloads) await lp.write(encodeHeader({ refused: 'busy' }), { signal })
        else if (this.coolingDown(peer, 'download')) await lp.write(encodeHeader({ refused: 'too soon' }), { signal })
        else {
          this.activeDownloads++
          try {
            await lp.write(encodeHeader({ ok: true }), { signal })
            const chunk = new Uint8Array(DOWNLOAD_CHUNK)
            for (let left = request.bytes; left > 0; left -= DOWNLOAD_CHUNK) await lp.write(chunk.subarray(0, Math.min(left, DOWNLOAD_CHUNK)), { signal })
          } finally {
            this.activeDownloads--
          }
        }
      } else {
        if (this.activeDialBacks >= this.maxDialBacks) await lp.write(encodeHeader({ refused: 'busy' }), { signal })
        else if (this.coolingDown(peer, 'dialback')) await lp.write(encodeHeader({ refused: 'too soon' }), { signal })
        else {
          this.activeDialBacks++
          try {
            const results = await this.dialBack(connection, request.addrs, signal)
            await lp.write(encodeHeader({ ok: true }), { signal })
            await lp.write(encodeDialBackResults(results), { signal })
          } finally {
            this.activeDialBacks--
          }
        }
      }
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  private async dialBack (connection: Connection, addrs: Multiaddr[], signal: AbortSignal): Promise<DialBackResult[]> {
    const requester = connection.remotePeer
    const sourceIp = ipOf(connection.remoteAddr)
    const results: DialBackResult[] = []
    // one at a time: concurrent dials to one peer are merged by the dial queue, which would
    // let a dead address share the success of a live one
    for (const addr of addrs) {
      const text = addr.toString()
      if (sourceIp === undefined) {
        results.push({ addr: text, reachable: false, error: 'request did not come over a direct IP connection' })
        continue
      }
      if (text.includes('/p2p-circuit') || ipOf(addr) !== sourceIp) {
        results.push({ addr: text, reachable: false, error: 'refused: not the address the request came from' })
        continue
      }
      const peerPart = addr.getComponents().find(c => c.name === 'p2p')
      if (peerPart !== undefined && peerPart.value !== requester.toString()) {
        results.push({ addr: text, reachable: false, error: 'refused: address of another peer' })
        continue
      }
      // dialled without the peer id so no existing connection to the requester is reused;
      // the secure channel then tells who answered
      const target = peerPart === undefined ? addr : addr.decapsulateCode(peerPart.code)
      let conn: Connection | undefined
      try {
        conn = await this.components.connectionManager.openConnection(target, { force: true, signal: AbortSignal.any([signal, AbortSignal.timeout(this.dialBackTimeoutMs)]) })
        results.push(conn.remotePeer.equals(requester) ? { addr: text, reachable: true } : { addr: text, reachable: false, error: 'another peer answered' })
      } catch (err) {
        results.push({ addr: text, reachable: false, error: (err as Error).message.slice(0, 200) })
      } finally {
        // the test connection has served its purpose; the requester keeps its own
        await conn?.close().catch(() => {})
      }
    }
    return results
  }

  private async open (peer: PeerId, signal?: AbortSignal): Promise<Stream> {
    return await this.components.connectionManager.openStream(peer, this.protocol, { signal, runOnLimitedConnection: false })
  }

  /** Median round-trip time of `rounds` small echoes. */
  async measureRtt (peer: PeerId, options: { rounds?: number, signal?: AbortSignal } = {}): Promise<RttMeasurement> {
    const rounds = Math.max(1, Math.min(MAX_ECHO_ROUNDS, options.rounds ?? 4))
    const signal = options.signal ?? AbortSignal.timeout(this.timeoutMs)
    const stream = await this.open(peer, signal)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_ECHO_FRAME })
      await lp.write(encodeProbeRequest({ op: 'echo', rounds }), { signal })
      const samples: number[] = []
      for (let i = 0; i < rounds; i++) {
        const data = randomBytesOf(32)
        const start = performance.now()
        await lp.write(data, { signal })
        const back = await lp.read({ signal })
        samples.push(performance.now() - start)
        if (!equalBytes(back.subarray(), data)) throw new InvalidProbeMessageError('echo came back altered')
      }
      await stream.close({ signal })
      return { rttMs: median(samples), samples }
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  /** Downloads `bytes` (at most 1 MiB) from the peer and times it. */
  async measureThroughput (peer: PeerId, options: { bytes?: number, signal?: AbortSignal } = {}): Promise<ThroughputMeasurement> {
    const bytes = Math.max(1, Math.min(MAX_DOWNLOAD_BYTES, options.bytes ?? 256 * 1024))
    const signal = options.signal ?? AbortSignal.timeout(this.timeoutMs)
    const stream = await this.open(peer, signal)
    try {
      const lp = lpStream(stream, { maxDataLength: DOWNLOAD_CHUNK })
      await lp.write(encodeProbeRequest({ op: 'download', bytes }), { signal })
      const header = decodeHeader((await lp.read({ signal })).subarray())
      if ('refused' in header) throw new ProbeRefusedError(`peer refused the download: ${header.refused}`)
      const start = performance.now()
      let received = 0
      while (received < bytes) received += (await lp.read({ signal })).byteLength
      const ms = Math.max(performance.now() - start, 0.001)
      if (received !== bytes) throw new InvalidProbeMessageError(`received ${received} bytes, asked for ${bytes}`)
      await stream.close({ signal })
      return { bytes, ms, mbps: (bytes * 8) / (ms * 1000) }
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  /** Asks the peer to dial each address back on a fresh connection. */
  async requestDialBack (peer: PeerId, addrs: Multiaddr[], options: { signal?: AbortSignal } = {}): Promise<DialBackResult[]> {
    const signal = options.signal ?? AbortSignal.timeout(this.timeoutMs)
    const stream = await this.open(peer, signal)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_CONTROL_FRAME })
      await lp.write(encodeProbeRequest({ op: 'dialback', addrs: addrs.slice(0, MAX_DIAL_BACK_ADDRS) }), { signal })
      const header = decodeHeader((await lp.read({ signal })).subarray())
      if ('refused' in header) throw new ProbeRefusedError(`peer refused the dial-back: ${header.refused}`)
      const results = decodeDialBackResults((await lp.read({ signal })).subarray())
      await stream.close({ signal })
      return results
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}

/** js-libp2p service factory: `services: { probe: networkProbe({ protocol }) }`. */
export function networkProbe (init: NetworkProbeInit): (components: NetworkProbeComponents) => NetworkProbe {
  return (components) => new NetworkProbe(components, init)
}
