// Serves the latest primary epoch to peers and fetches it from them. Request: { have: the
// asker's epoch number or null }. Response: { headers: certified headers after `have` up to
// the latest (so a node that missed epochs can check the chain), epoch: latest bytes | null }.
import type { PeerId, Stream } from '@libp2p/interface'
import { FramedStream } from '../framed-stream.ts'
import { SporeProtocolError } from '../errors.ts'
import type { SporeHost } from '../host.ts'
import type { SporeLogger } from '../logger.ts'
import { MAX_EPOCH_BYTES, type Epoch } from './epoch.ts'
import type { PrimarySpore } from './primary-spore.ts'

const TIMEOUT_MS = 20_000
const MAX_MESSAGE = MAX_EPOCH_BYTES + 2 * 1024 * 1024

export class PrimaryEpochService {
  private readonly host: SporeHost
  private readonly protocol: string
  private readonly primary: PrimarySpore
  private readonly log: SporeLogger

  constructor (options: { host: SporeHost, protocol: string, primary: PrimarySpore, log: SporeLogger }) {
    this.host = options.host
    this.protocol = options.protocol
    this.primary = options.primary
    this.log = options.log
  }

  async start (): Promise<void> {
    await this.host.handle(this.protocol, (stream) => { void this.answer(stream) }, { maxInboundStreams: 8 })
  }

  async stop (): Promise<void> {
    await this.host.unhandle(this.protocol)
  }

  private async answer (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(TIMEOUT_MS)
    try {
      const framed = new FramedStream(stream, 1024, signal)
      const request = await framed.receive() as { have?: unknown }
      const have = typeof request?.have === 'number' && Number.isSafeInteger(request.have) && request.have >= 0 ? request.have : null
      const latest = this.primary.latest()
      const newer = latest !== undefined && (have === null || latest.header.epoch > have)
      await framed.send({ headers: newer ? await this.primary.headersAfter(have) : [], epoch: newer ? await this.primary.latestBytes() ?? null : null })
      await stream.close({ signal })
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'primary epoch request failed')
      stream.abort(err as Error)
    }
  }

  /** Asks a peer for a newer epoch and accepts it; returns it, or undefined if the peer has nothing newer. */
  async fetchFrom (peer: PeerId, signal?: AbortSignal): Promise<Epoch | undefined> {
    const s = signal === undefined ? AbortSignal.timeout(TIMEOUT_MS) : AbortSignal.any([signal, AbortSignal.timeout(TIMEOUT_MS)])
    const stream = await this.host.dialProtocol(peer, this.protocol, { signal: s })
    try {
      const framed = new FramedStream(stream, MAX_MESSAGE, s)
      await framed.send({ have: this.primary.latest()?.header.epoch ?? null })
      const response = await framed.receive() as { headers?: unknown, epoch?: unknown }
      await stream.close({ signal: s })
      if (response?.epoch === null) return undefined
      if (!(response?.epoch instanceof Uint8Array) || !Array.isArray(response.headers) || response.headers.length > 1024) throw new SporeProtocolError('malformed epoch response')
      const chain = response.headers.map((h: unknown) => {
        if (!Array.isArray(h) || h.length !== 2 || !(h[0] instanceof Uint8Array) || !(h[1] instanceof Uint8Array)) throw new SporeProtocolError('malformed epoch header')
        return [h[0], h[1]] as [Uint8Array, Uint8Array]
      })
      return await this.primary.accept(response.epoch, chain)
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}
