// The gateway to application instances: every sclerotium answers HTTP under /app/NAME/ and
// carries each request over the mesh (a libp2p stream, so an instance behind NAT or on a node
// with no public port is reachable) to a node that runs a healthy instance, which hands it to
// the instance on 127.0.0.1. Bodies stream both ways in credited frames (gateway-channel.ts):
// the answer starts as soon as the instance starts it, a body of any size passes with at most a
// window of it held per direction, and a side that stalls stalls only its own request.
// Endpoints are tried round-robin; one that fails before any of the request body was sent is
// skipped and the next tried. Once bytes have gone one way or the other a failure ends the
// request: a client that leaves aborts the stream (and the instance's request), an instance
// that dies mid-answer leaves the client a truncated answer.
import { request as httpRequest, type IncomingMessage, type ServerResponse, type ClientRequest } from 'node:http'
import { once } from 'node:events'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { protocolPrefix } from '../../membership/index.ts'
import { APP_NAME } from '../../spores/entry/types.ts'
import { decodeRequestHead, decodeAnswerHead, encodeHead, cleanHeaders, MAX_HEADERS, WINDOW_BYTES, InvalidGatewayMessageError, type RequestHead, type AnswerHead } from './gateway-messages.ts'
import { GatewayChannel, GatewayStreamError, type ChannelCounters } from './gateway-channel.ts'
import type { Logger } from '../log/index.ts'

/** nothing moved on a stream for this long (no frame either way): it is given up */
const IDLE_MS = 30_000
const DIAL_MS = 10_000
const ATTEMPTS = 3

export function gatewayProtocol (networkId: string): string {
  return `${protocolPrefix(networkId)}/app-gateway/2.0.0`
}

/** A failure before anything of the request went out or came back: the next endpoint may take it. */
class RetryableError extends Error {
  readonly name = 'RetryableError'
}

export interface GatewayOptions {
  host: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>
  networkId: string
  self: string
  log: Logger
  /** The local port of a healthy instance of `app` running here, if any. */
  localPort: (app: string) => number | undefined
  /** Peers that run a healthy instance of `app` (self included when it does). */
  endpoints: (app: string) => string[]
  /** Whether `app` is planned at all (404 otherwise). */
  known: (app: string) => boolean
  /** Every gateway stream once it is over, from either end, with what crossed it and why it failed. */
  onStream?: (end: 'gateway' | 'instance', counters: ChannelCounters, error?: Error) => void
  /** How long a stream may stand still (no frame either way) before it is given up; 30 s by default. */
  idleMs?: number
}

function headersOf (raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (let i = 0; i + 1 < raw.length && out.length < MAX_HEADERS; i += 2) out.push([raw[i], raw[i + 1]])
  return out
}

function plainAnswer (status: number, text: string): { head: AnswerHead, body: Uint8Array } {
  return { head: { status, headers: [['content-type', 'text/plain; charset=utf-8']] }, body: new TextEncoder().encode(`${text}\n`) }
}

/** Whether an HTTP request carries a body at all (RFC 9112 §6.3). */
function hasBody (req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')
}

export class AppGateway {
  private readonly options: GatewayOptions
  private readonly protocol: string
  private readonly turn = new Map<string, number>()

  constructor (options: GatewayOptions) {
    this.options = options
    this.protocol = gatewayProtocol(options.networkId)
  }

  async start (): Promise<void> {
    await this.options.host.handle(this.protocol, (stream) => { void this.serve(stream) }, { maxInboundStreams: 64 })
  }

  async stop (): Promise<void> {
    await this.options.host.unhandle(this.protocol).catch(() => {})
  }

  /** The instance's end: one request from another node's gateway, handed to the local instance. */
  private async serve (stream: Parameters<Parameters<Libp2p['handle']>[1]>[0]): Promise<void> {
    // the answer's reader (the gateway) takes a window at once; the request's body waits until
    // there is an instance to give it to
    const ch = new GatewayChannel(stream, { sendCredit: WINDOW_BYTES, recvCredit: 0, idleMs: this.options.idleMs ?? IDLE_MS })
    try {
      const head = decodeRequestHead(await ch.remoteHead())
      const port = this.options.localPort(head.app)
      if (port === undefined) {
        const { head: h, body } = plainAnswer(503, `no healthy instance of ${head.app} on this node`)
        ch.sendHead(encodeHead(h))
        await ch.sendData(body)
        ch.sendEnd()
        await ch.close()
        return
      }
      await this.relay(ch, port, head)
      await ch.close()
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'gateway request not answered')
      ch.abort(err as Error)
    } finally {
      this.options.onStream?.('instance', ch.counters, ch.error)
    }
  }

  /** Carries one request between the channel and the instance on 127.0.0.1:port, both bodies streaming. */
  private async relay (ch: GatewayChannel, port: number, head: RequestHead): Promise<void> {
    const outgoing = httpRequest({ host: '127.0.0.1', port, method: head.method, path: head.path, headers: Object.fromEntries(head.headers) })
    // errors after the first (a destroy once the answer has started) have nowhere else to go
    outgoing.on('error', () => {})
    // the gateway left or broke the protocol: the instance's request goes too
    void ch.failed.then((err) => { outgoing.destroy(err) })
    ch.grantWindow()
    const upload = (async () => {
      for await (const chunk of ch.body()) {
        if (!outgoing.write(chunk)) await once(outgoing, 'drain')
      }
      outgoing.end()
    })()
    upload.catch(() => {})
    let res: IncomingMessage
    try {
      res = await responseOf(outgoing)
    } catch (err) {
      if (ch.error !== undefined) throw ch.error
      // nothing of the answer went out yet: the gateway gets a 502 that says why
      const { head: h, body } = plainAnswer(502, `the instance did not answer: ${(err as Error).message}`)
      ch.sendHead(encodeHead(h))
      await ch.sendData(body)
      ch.sendEnd()
      return
    }
    ch.sendHead(encodeHead({ status: res.statusCode ?? 502, headers: cleanHeaders(headersOf(res.rawHeaders)) }))
    // an instance that dies mid-answer makes this throw: the stream is aborted, the gateway truncates
    for await (const chunk of res) await ch.sendData(chunk as Buffer)
    ch.sendEnd()
  }

  /** The gateway's end: one HTTP request to another node over a new stream. */
  private async forward (peer: string, head: RequestHead, req: IncomingMessage, res: ServerResponse): Promise<void> {
    let stream
    try {
      // the protocol name goes out with the request (no round trip of its own): one protocol,
      // and a peer that does not speak it fails the request, which is then tried elsewhere
      stream = await this.options.host.dialProtocol(peerIdFromString(peer), this.protocol, { signal: AbortSignal.timeout(DIAL_MS), negotiateFully: false })
    } catch (err) {
      throw new RetryableError((err as Error).message)
    }
    const ch = new GatewayChannel(stream, { sendCredit: 0, recvCredit: WINDOW_BYTES, idleMs: this.options.idleMs ?? IDLE_MS })
    const leaving = (): void => { if (!res.writableFinished) ch.abort(new GatewayStreamError('the HTTP client went away')) }
    res.on('close', leaving)
    let bodySent = false
    try {
      ch.sendHead(encodeHead(head))
      const withBody = hasBody(req)
      if (!withBody) ch.sendEnd()
      // nothing of the request body is read before the far end grants credit: until then a
      // failure (or its 503) leaves the request whole for the next endpoint
      await ch.until(() => ch.hasHead || (withBody && ch.hasCredit))
      if (withBody && ch.hasCredit) {
        bodySent = true
        void (async () => {
          for await (const chunk of req) await ch.sendData(chunk as Buffer)
          ch.sendEnd()
        })().catch((err: Error) => {
          // the answer may be complete already (an instance that answers without reading): that is fine
          if (!ch.bodyDone) ch.abort(err)
        })
      }
      const answer = decodeAnswerHead(await ch.remoteHead())
      if (answer.status === 503 && !bodySent) throw new RetryableError('no healthy instance there')
      res.writeHead(answer.status, Object.fromEntries([...answer.headers, ['x-mycelium-instance', peer]]))
      for await (const chunk of ch.body()) {
        if (!res.write(chunk)) await Promise.race([once(res, 'drain'), ch.failed.then(err => { throw err })])
      }
      res.end()
      await ch.close()
    } catch (err) {
      ch.abort(err as Error)
      if (err instanceof RetryableError) throw err
      if (!bodySent && !res.headersSent && !(err instanceof InvalidGatewayMessageError)) throw new RetryableError((err as Error).message)
      throw err
    } finally {
      res.off('close', leaving)
      this.options.onStream?.('gateway', ch.counters, ch.error)
    }
  }

  /** This node runs the instance: the request goes straight to it, both bodies piped. */
  private async local (port: number, head: RequestHead, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const outgoing = httpRequest({ host: '127.0.0.1', port, method: head.method, path: head.path, headers: Object.fromEntries(head.headers) })
    outgoing.on('error', () => {})
    const leaving = (): void => { if (!res.writableFinished) outgoing.destroy(new Error('the HTTP client went away')) }
    res.on('close', leaving)
    req.pipe(outgoing)
    try {
      const answer = await responseOf(outgoing)
      res.writeHead(answer.statusCode ?? 502, Object.fromEntries([...cleanHeaders(headersOf(answer.rawHeaders)), ['x-mycelium-instance', this.options.self]]))
      answer.pipe(res)
      // an instance that dies mid-answer: the client gets a truncated answer
      answer.on('error', () => { res.destroy() })
      answer.on('aborted', () => { res.destroy() })
      await once(res, 'close')
    } catch (err) {
      if (!hasBody(req)) throw new RetryableError((err as Error).message)
      throw err
    } finally {
      res.off('close', leaving)
    }
  }

  /** Answers an HTTP request whose path starts with /app/. */
  async handle (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const match = /^\/app\/([^/]+)(\/.*)?$/.exec(path)
    const app = match?.[1] ?? ''
    const plain = (status: number, text: string): void => { res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(`${text}\n`) }
    if (!APP_NAME.test(app)) { plain(404, 'no such application'); return }
    if (!this.options.known(app)) { plain(404, `no application ${app} is planned in this network`); return }
    // a client that leaves mid-body makes the request emit an error; what it means is handled where the body is read
    req.on('error', () => {})
    const query = req.url?.includes('?') === true ? req.url.slice(req.url.indexOf('?')) : ''
    const head: RequestHead = { app, method: req.method ?? 'GET', path: `${match?.[2] ?? '/'}${query}`, headers: cleanHeaders(headersOf(req.rawHeaders)) }
    try {
      encodeHead(head)
    } catch (err) {
      plain(431, (err as Error).message); return
    }
    const endpoints = this.options.endpoints(app)
    if (endpoints.length === 0) { plain(503, `no healthy instance of ${app} right now`); return }
    const start = (this.turn.get(app) ?? 0) % endpoints.length
    this.turn.set(app, start + 1)
    const failures: string[] = []
    for (let i = 0; i < Math.min(ATTEMPTS, endpoints.length); i++) {
      const peer = endpoints[(start + i) % endpoints.length]
      try {
        if (peer === this.options.self) {
          const port = this.options.localPort(app)
          if (port === undefined) throw new RetryableError('the local instance is not healthy')
          await this.local(port, head, req, res)
        } else {
          await this.forward(peer, head, req, res)
        }
        return
      } catch (err) {
        failures.push(`${peer.slice(-8)}: ${(err as Error).message}`)
        if (!(err instanceof RetryableError)) break
      }
    }
    this.options.log.warn({ app, failures }, 'gateway: no endpoint answered')
    // once the answer has started it can only be cut short: the client sees a truncated body
    if (res.headersSent) res.destroy()
    else if (!res.writableEnded) plain(502, `no instance of ${app} answered (${failures.join('; ')})`)
  }
}

/** The instance's response to `outgoing`, or why there is none. */
async function responseOf (outgoing: ClientRequest): Promise<IncomingMessage> {
  return await new Promise((resolve, reject) => {
    outgoing.once('response', resolve)
    outgoing.once('error', reject)
    outgoing.once('close', () => { reject(new Error('the connection to the instance closed')) })
  })
}
