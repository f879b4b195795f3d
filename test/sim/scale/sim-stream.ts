// A libp2p stream between two simulated nodes, enough of the Stream interface for the real
// length-prefixed framing (@libp2p/utils lpStream) that the anti-entropy sync uses: `send`
// carries the bytes over the link (latency, bandwidth, a retransmission delay for a lost
// segment; order kept), `close` ends this side's writing, `abort` resets both ends. When a
// node dies its streams are reset at the other end, as a closed connection does.
import type { VirtualClock } from './virtual-clock.ts'
import type { Links } from './links.ts'
import type { Traffic } from './traffic.ts'

/** Yamux frame header plus TCP/IP per message, roughly. */
export const STREAM_FRAME_BYTES = 12 + 40

const noLog = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

class MessageEvent extends Event {
  readonly data: Uint8Array
  constructor (data: Uint8Array) {
    super('message')
    this.data = data
  }
}

class CloseEvent extends Event {
  readonly error?: Error
  constructor (error?: Error) {
    super('close')
    this.error = error
  }
}

interface Wire { clock: VirtualClock, links: Links, traffic: Traffic }

export class SimStream extends EventTarget {
  readonly log = noLog
  readonly node: number
  readonly remoteNode: number
  protocol: string
  status: 'open' | 'closed' | 'aborted' = 'open'
  writeStatus: 'writable' | 'closed' = 'writable'
  remoteWriteStatus: 'writable' | 'closed' = 'writable'
  readBufferLength = 0
  peer?: SimStream
  private readonly wire: Wire
  private lastArrival = 0
  onEnd?: () => void

  constructor (wire: Wire, node: number, remoteNode: number, protocol: string) {
    super()
    this.wire = wire
    this.node = node
    this.remoteNode = remoteNode
    this.protocol = protocol
  }

  /** Delivers `fn` at the other end after the link's delay, never before an earlier delivery. */
  private carry (bytes: number, fn: (peer: SimStream) => void): void {
    const { clock, links, traffic } = this.wire
    traffic.out(this.node, 'sync', bytes)
    traffic.in(this.remoteNode, 'sync', bytes)
    let delay = links.delay(this.node, this.remoteNode, bytes)
    if (links.lost()) delay += links.model.retransmitMs
    const at = Math.max(clock.now() + delay, this.lastArrival)
    this.lastArrival = at
    clock.at(at, () => { if (this.peer !== undefined && this.peer.status === 'open') fn(this.peer) })
  }

  send (data: Uint8Array | { subarray: () => Uint8Array }): boolean {
    if (this.status !== 'open' || this.writeStatus !== 'writable') throw new Error(`stream is ${this.status}`)
    const bytes = data instanceof Uint8Array ? data.slice() : data.subarray().slice()
    this.carry(bytes.length + STREAM_FRAME_BYTES, (peer) => { peer.dispatchEvent(new MessageEvent(bytes)) })
    return true
  }

  /** Present so lpStream reads end-of-stream from remoteWriteStatus, as on a real stream. */
  async closeRead (): Promise<void> {}

  push (): void {
    throw new Error('not used by the simulated streams')
  }

  async close (): Promise<void> {
    if (this.status !== 'open' || this.writeStatus === 'closed') return
    this.writeStatus = 'closed'
    this.carry(STREAM_FRAME_BYTES, (peer) => {
      peer.remoteWriteStatus = 'closed'
      peer.dispatchEvent(new Event('remoteCloseWrite'))
      peer.endIfDone()
    })
    this.endIfDone()
  }

  private endIfDone (): void {
    if (this.status === 'open' && this.writeStatus === 'closed' && this.remoteWriteStatus === 'closed') {
      this.status = 'closed'
      this.dispatchEvent(new CloseEvent())
      this.onEnd?.()
    }
  }

  abort (err: Error): void {
    if (this.status !== 'open') return
    this.reset(err)
    this.carry(STREAM_FRAME_BYTES, (peer) => { peer.reset(new Error('stream reset by the remote')) })
  }

  /** Ends this side at once with an error (a reset, or the remote node died). */
  reset (err: Error): void {
    if (this.status !== 'open') return
    this.status = 'aborted'
    this.writeStatus = 'closed'
    this.remoteWriteStatus = 'closed'
    this.dispatchEvent(new CloseEvent(err))
    this.onEnd?.()
  }
}

export function streamPair (wire: Wire, from: number, to: number, protocol: string): [SimStream, SimStream] {
  const a = new SimStream(wire, from, to, protocol)
  const b = new SimStream(wire, to, from, protocol)
  a.peer = b
  b.peer = a
  return [a, b]
}
