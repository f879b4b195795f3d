// Serves the latest primary epoch to peers and fetches it from them. Request: { have: the
// newest epoch whose header the asker holds, or null }. Response: { headers: certified headers
// after `have` up to the latest, at most one page of them (so a node that missed epochs can
// check the chain), epoch: latest bytes | null }. An asker further behind than one page takes
// the page's headers (each link checked), then asks again from the last of them: a node that
// joins a network older than a page still checks the whole chain from epoch 0.
import type { PeerId, Stream } from '@libp2p/interface'
import { FramedStream } from '../framed-stream.ts'
import { SporeProtocolError } from '../errors.ts'
import type { SporeHost } from '../host.ts'
import type { SporeLogger } from '../logger.ts'
import { MAX_EPOCH_BYTES, decodeCertifiedHeader, decodeEpoch, type Epoch } from './epoch.ts'
import type { PrimarySpore } from './primary-spore.ts'

const TIMEOUT_MS = 20_000
/** Headers in one response at most (about 2.3 KB each with a committee of four). */
export const MAX_HEADERS_PER_RESPONSE = 1024
const MAX_MESSAGE = MAX_EPOCH_BYTES + 4 * 1024 * 1024
/**
 * Pages one fetch follows at most: 64 pages of 1,024 headers are more than members keep
 * (a week of epochs at the default interval); a peer that keeps sending full pages is left.
 */
const MAX_PAGES = 64

export class PrimaryEpochService {
  private readonly host: SporeHost
  private readonly protocol: string
  private readonly primary: PrimarySpore
  private readonly log: SporeLogger
  private readonly headersPerResponse: number

  constructor (options: { host: SporeHost, protocol: string, primary: PrimarySpore, log: SporeLogger, headersPerResponse?: number }) {
    this.host = options.host
    this.protocol = options.protocol
    this.primary = options.primary
    this.log = options.log
    this.headersPerResponse = Math.min(MAX_HEADERS_PER_RESPONSE, Math.max(1, options.headersPerResponse ?? MAX_HEADERS_PER_RESPONSE))
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
      await framed.send({ headers: newer ? await this.primary.headersAfter(have, this.headersPerResponse) : [], epoch: newer ? await this.primary.latestBytes() ?? null : null })
      await stream.close({ signal })
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'primary epoch request failed')
      stream.abort(err as Error)
    }
  }

  /**
   * Asks a peer for a newer epoch and accepts it; returns it, or undefined if the peer has
   * nothing newer. Where the headers between do not fit one response, each page is checked and
   * kept before the next is asked for.
   */
  async fetchFrom (peer: PeerId, signal?: AbortSignal): Promise<Epoch | undefined> {
    for (let page = 0; page < MAX_PAGES; page++) {
      const { chain, epoch } = await this.ask(peer, await this.primary.needsAfter(), signal)
      if (epoch === undefined) return undefined
      const last = chain.length === 0 ? undefined : decodeCertifiedHeader(...chain[chain.length - 1]).header.epoch
      const latest = decodeEpoch(epoch)
      if (last === undefined || last >= latest.header.epoch - 1) return await this.primary.accept(latest, chain)
      await this.primary.acceptHeaders(chain)
    }
    throw new SporeProtocolError(`more than ${MAX_PAGES} pages of headers`)
  }

  private async ask (peer: PeerId, have: number | null, signal?: AbortSignal): Promise<{ chain: Array<[Uint8Array, Uint8Array]>, epoch?: Uint8Array }> {
    const s = signal === undefined ? AbortSignal.timeout(TIMEOUT_MS) : AbortSignal.any([signal, AbortSignal.timeout(TIMEOUT_MS)])
    const stream = await this.host.dialProtocol(peer, this.protocol, { signal: s })
    try {
      const framed = new FramedStream(stream, MAX_MESSAGE, s)
      await framed.send({ have })
      const response = await framed.receive() as { headers?: unknown, epoch?: unknown }
      await stream.close({ signal: s })
      if (response?.epoch === null) return { chain: [] }
      if (!(response?.epoch instanceof Uint8Array) || !Array.isArray(response.headers) || response.headers.length > MAX_HEADERS_PER_RESPONSE) throw new SporeProtocolError('malformed epoch response')
      const chain = response.headers.map((h: unknown) => {
        if (!Array.isArray(h) || h.length !== 2 || !(h[0] instanceof Uint8Array) || !(h[1] instanceof Uint8Array)) throw new SporeProtocolError('malformed epoch header')
        return [h[0], h[1]] as [Uint8Array, Uint8Array]
      })
      return { chain, epoch: response.epoch }
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}
