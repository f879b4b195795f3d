// Fetching bundles from the members that hold them, over a libp2p stream of this network:
// the asker names a digest, the holder answers with the size and then the bytes in chunks. The
// asker trusts nothing of it: the size is bounded before anything is read, and the bytes must
// hash to the digest asked for and open as a signed bundle before they are kept.
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import { protocolPrefix } from '../../membership/index.ts'
import { MAX_BUNDLE_BYTES } from '../../workloads/bundle/index.ts'
import type { MyceliumHost } from '../host/index.ts'
import type { Logger } from '../log/index.ts'
import type { BundleStore } from './bundle-store.ts'

const CHUNK_BYTES = 256 * 1024
const FETCH_TIMEOUT_MS = 120_000

export class BundleFetchError extends Error {
  readonly name = 'BundleFetchError'
}

export function bundleProtocol (networkId: string): string {
  return `${protocolPrefix(networkId)}/bundle/1.0.0`
}

export class BundleExchange {
  private readonly host: MyceliumHost
  private readonly store: BundleStore
  private readonly protocol: string
  private readonly log: Logger
  /** one fetch per digest at a time, whoever asks */
  private readonly fetching = new Map<string, Promise<Uint8Array>>()

  constructor (options: { host: MyceliumHost, store: BundleStore, networkId: string, log: Logger }) {
    this.host = options.host
    this.store = options.store
    this.protocol = bundleProtocol(options.networkId)
    this.log = options.log
  }

  async start (): Promise<void> {
    await this.host.handle(this.protocol, (stream) => { void this.serve(stream) }, { maxInboundStreams: 4 })
  }

  async stop (): Promise<void> {
    await this.host.unhandle(this.protocol).catch(() => {})
  }

  private async serve (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(FETCH_TIMEOUT_MS)
    try {
      const lp = lpStream(stream, { maxDataLength: CHUNK_BYTES })
      const request = decodeCanonical((await lp.read({ signal })).subarray()) as { digest?: unknown }
      const digest = request !== null && typeof request === 'object' ? request.digest : undefined
      const bytes = typeof digest === 'string' && /^[0-9a-f]{64}$/.test(digest) ? this.store.read(digest) : undefined
      if (bytes === undefined) {
        await lp.write(encodeCanonical({ missing: true }), { signal })
      } else {
        await lp.write(encodeCanonical({ size: bytes.length }), { signal })
        for (let at = 0; at < bytes.length; at += CHUNK_BYTES) await lp.write(bytes.subarray(at, at + CHUNK_BYTES), { signal })
      }
      await stream.close({ signal })
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'bundle request not answered')
      stream.abort(err as Error)
    }
  }

  /** Digests being fetched right now. */
  fetchingNow (): string[] {
    return [...this.fetching.keys()]
  }

  /** The bundle's bytes from the first of `holders` that has them; kept in the store. */
  async fetch (digest: string, holders: string[]): Promise<Uint8Array> {
    const held = this.store.read(digest)
    if (held !== undefined) return held
    let running = this.fetching.get(digest)
    if (running === undefined) {
      running = this.fetchFromAny(digest, holders).finally(() => this.fetching.delete(digest))
      this.fetching.set(digest, running)
    }
    return await running
  }

  private async fetchFromAny (digest: string, holders: string[]): Promise<Uint8Array> {
    const reasons: string[] = []
    // in random order: a holder that lies or trickles (it is checked, but costs its timeout)
    // must not come first for every node, every time
    const order = [...holders]
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]]
    }
    for (const holder of order) {
      try {
        const bytes = await this.fetchFrom(digest, holder)
        this.store.put(bytes, digest)
        return bytes
      } catch (err) {
        reasons.push(`${holder.slice(-8)}: ${(err as Error).message}`)
      }
    }
    throw new BundleFetchError(holders.length === 0 ? `no member holds bundle ${digest.slice(0, 12)}` : `bundle ${digest.slice(0, 12)} could not be fetched (${reasons.join('; ')})`)
  }

  private async fetchFrom (digest: string, holder: string): Promise<Uint8Array> {
    const signal = AbortSignal.timeout(FETCH_TIMEOUT_MS)
    const stream = await this.host.dialProtocol(peerIdFromString(holder), this.protocol, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: CHUNK_BYTES })
      await lp.write(encodeCanonical({ digest }), { signal })
      const head = decodeCanonical((await lp.read({ signal })).subarray()) as { size?: unknown, missing?: unknown }
      if (head === null || typeof head !== 'object') throw new BundleFetchError('malformed answer')
      if (head.missing === true) throw new BundleFetchError('does not hold it')
      const size = head.size
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size > MAX_BUNDLE_BYTES) throw new BundleFetchError(`announces an impossible size ${String(size).slice(0, 20)}`)
      const bytes = new Uint8Array(size)
      let at = 0
      while (at < size) {
        const chunk = (await lp.read({ signal })).subarray()
        if (at + chunk.length > size) throw new BundleFetchError('sent more than it announced')
        bytes.set(chunk, at)
        at += chunk.length
      }
      await stream.close({ signal }).catch(() => {})
      return bytes
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}

