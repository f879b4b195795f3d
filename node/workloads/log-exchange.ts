// Reading an instance's logs from another node: `mycelium app logs NAME` works on any node, not
// only the one that runs the instance. Logs may hold what an application prints about its
// users, so a node hands them only to a member that proves operator authority: the request
// carries an operator grant for the asking peer (the administrator node signs one for itself
// with the root key), checked against the root key and the authenticated remote peer.
import { lpStream } from '@libp2p/utils'
import type { Stream, Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import { protocolPrefix, operatorGrantAdmits, MAX_OPERATOR_GRANT_BYTES } from '../../membership/index.ts'
import { APP_NAME } from '../../spores/entry/types.ts'
import type { MyceliumHost } from '../host/index.ts'
import type { Logger } from '../log/index.ts'

export const MAX_LOG_TAIL_BYTES = 1024 * 1024
const TIMEOUT_MS = 10_000

export class LogRequestError extends Error {
  readonly name = 'LogRequestError'
}

export interface LogRequest { app: string, stream: 'stdout' | 'stderr', tail: number, grant: Uint8Array }

export function decodeLogRequest (bytes: Uint8Array): LogRequest {
  let raw: Record<string, unknown>
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
  } catch (err) {
    throw new LogRequestError(`log request is not decodable: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new LogRequestError('log request has the wrong shape')
  const { app, stream, tail, grant } = raw
  if (typeof app !== 'string' || !APP_NAME.test(app)) throw new LogRequestError('log request names no application')
  if (stream !== 'stdout' && stream !== 'stderr') throw new LogRequestError('log request names no stream')
  if (typeof tail !== 'number' || !Number.isSafeInteger(tail) || tail < 0 || tail > MAX_LOG_TAIL_BYTES) throw new LogRequestError('log request asks for an impossible tail')
  if (!(grant instanceof Uint8Array) || grant.length > MAX_OPERATOR_GRANT_BYTES) throw new LogRequestError('log request carries no operator grant')
  return { app, stream, tail, grant }
}

export function logProtocol (networkId: string): string {
  return `${protocolPrefix(networkId)}/app-logs/1.0.0`
}

export class LogExchange {
  private readonly o: { host: MyceliumHost, networkId: string, rootPublicKey: Uint8Array, log: Logger, read: (app: string, stream: 'stdout' | 'stderr', tail: number) => Promise<string | undefined> }
  private readonly protocol: string

  constructor (options: LogExchange['o']) {
    this.o = options
    this.protocol = logProtocol(options.networkId)
  }

  async start (): Promise<void> {
    await this.o.host.handle(this.protocol, (stream, connection) => { void this.serve(stream, connection) }, { maxInboundStreams: 4 })
  }

  async stop (): Promise<void> {
    await this.o.host.unhandle(this.protocol).catch(() => {})
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(TIMEOUT_MS)
    try {
      // one framing per direction's limit: requests are small, answers carry up to a tail of log
      const lp = lpStream(stream, { maxDataLength: 4096 })
      const req = decodeLogRequest((await lp.read({ signal })).subarray())
      const asker = connection.remotePeer.toString()
      const answer = !operatorGrantAdmits(req.grant, { rootPublicKey: this.o.rootPublicKey, operator: asker, at: Date.now() })
        ? { refused: 'the request carries no operator grant for its sender' }
        : await this.o.read(req.app, req.stream, req.tail).then(text => text === undefined ? { missing: true } : { text })
      await lp.write(encodeCanonical(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, 'log request not answered')
      stream.abort(err as Error)
    }
  }

  /** The tail of `app`'s log on `peer`; undefined when that node holds none. */
  async fetch (peer: string, req: LogRequest): Promise<string | undefined> {
    const signal = AbortSignal.timeout(TIMEOUT_MS)
    const stream = await this.o.host.dialProtocol(peerIdFromString(peer), this.protocol, { signal })
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_LOG_TAIL_BYTES * 4 + 1024 })
      await lp.write(encodeCanonical(req), { signal })
      const raw = decodeCanonical((await lp.read({ signal })).subarray()) as Record<string, unknown>
      await stream.close({ signal }).catch(() => {})
      if (raw !== null && typeof raw === 'object' && typeof raw.refused === 'string') throw new LogRequestError(`${peer.slice(-8)} refused: ${raw.refused}`)
      if (raw !== null && typeof raw === 'object' && typeof raw.text === 'string') return raw.text
      return undefined
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}
