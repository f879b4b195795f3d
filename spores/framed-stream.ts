// Length-prefixed CBOR messages over a libp2p stream, bounded in size and counted in bytes,
// for the request/response protocols of the spores.
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { encodeCanonical, decodeCanonical } from '../crypto/index.ts'
import { SporeProtocolError } from './errors.ts'

export class FramedStream {
  bytesIn = 0
  bytesOut = 0
  private readonly lp: ReturnType<typeof lpStream<Stream>>
  private readonly signal: AbortSignal

  constructor (stream: Stream, maxMessageBytes: number, signal: AbortSignal) {
    this.lp = lpStream(stream, { maxDataLength: maxMessageBytes })
    this.signal = signal
  }

  async send (message: unknown): Promise<void> {
    const bytes = encodeCanonical(message)
    this.bytesOut += bytes.length + varintLength(bytes.length)
    await this.lp.write(bytes, { signal: this.signal })
  }

  async receive (): Promise<unknown> {
    const data = (await this.lp.read({ signal: this.signal })).subarray()
    this.bytesIn += data.length + varintLength(data.length)
    try {
      return decodeCanonical(data)
    } catch (err) {
      throw new SporeProtocolError(`undecodable message: ${(err as Error).message}`)
    }
  }
}

function varintLength (n: number): number {
  let len = 1
  while (n >= 128) { n = Math.floor(n / 128); len++ }
  return len
}
