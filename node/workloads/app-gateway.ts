// The gateway to application instances: every sclerotium answers HTTP under /app/NAME/ and
// carries each request over the mesh (a libp2p stream, so an instance behind NAT or on a node
// with no public port is reachable) to a node that runs a healthy instance, which hands it to
// the instance on 127.0.0.1. Endpoints are tried round-robin; a failed one is skipped and the
// next tried. Requests and answers are whole messages, bounded in size.
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { encodeCanonical } from '../../crypto/index.ts'
import { protocolPrefix } from '../../membership/index.ts'
import { APP_NAME } from '../../spores/entry/types.ts'
import { decodeGatewayRequest, decodeGatewayAnswer, cleanHeaders, MAX_HEADERS, MAX_REQUEST_BODY_BYTES, MAX_RESPONSE_BODY_BYTES, type GatewayRequest, type GatewayAnswer } from './gateway-messages.ts'
import type { MyceliumHost } from '../host/index.ts'
import type { Logger } from '../log/index.ts'

const FRAME_SLACK = 64 * 1024
const HOP_TIMEOUT_MS = 30_000
const ATTEMPTS = 3

export function gatewayProtocol (networkId: string): string {
  return `${protocolPrefix(networkId)}/app-gateway/1.0.0`
}

/** Hands a request to the instance listening on 127.0.0.1:port. */
export async function askInstance (port: number, req: GatewayRequest): Promise<GatewayAnswer> {
  return await new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, method: req.method, path: req.path, headers: Object.fromEntries(req.headers), timeout: HOP_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_RESPONSE_BODY_BYTES) { res.destroy(); reject(new Error('the instance answered more than the gateway carries')) } else chunks.push(chunk)
      })
      res.on('end', () => {
        const headers: Array<[string, string]> = []
        for (let i = 0; i < res.rawHeaders.length; i += 2) headers.push([res.rawHeaders[i], res.rawHeaders[i + 1]])
        resolve({ status: res.statusCode ?? 502, headers: cleanHeaders(headers), body: new Uint8Array(Buffer.concat(chunks)) })
      })
      res.on('error', reject)
    })
    outgoing.on('timeout', () => { outgoing.destroy(new Error('the instance did not answer in time')) })
    outgoing.on('error', reject)
    outgoing.end(req.body)
  })
}

export interface GatewayOptions {
  host: MyceliumHost
  networkId: string
  self: string
  log: Logger
  /** The local port of a healthy instance of `app` running here, if any. */
  localPort: (app: string) => number | undefined
  /** Peers that run a healthy instance of `app` (self included when it does). */
  endpoints: (app: string) => string[]
  /** Whether `app` is planned at all (404 otherwise). */
  known: (app: string) => boolean
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

  private async serve (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(HOP_TIMEOUT_MS + 5000)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BODY_BYTES + FRAME_SLACK })
      const req = decodeGatewayRequest((await lp.read({ signal })).subarray())
      const port = this.options.localPort(req.app)
      const answer = port === undefined
        ? { status: 503, headers: [['content-type', 'text/plain']] as Array<[string, string]>, body: new TextEncoder().encode(`no healthy instance of ${req.app} on this node\n`) }
        : await askInstance(port, req).catch((err: Error) => ({ status: 502, headers: [['content-type', 'text/plain']] as Array<[string, string]>, body: new TextEncoder().encode(`${err.message}\n`) }))
      await lp.write(encodeCanonical(answer), { signal })
      await stream.close({ signal })
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'gateway request not answered')
      stream.abort(err as Error)
    }
  }

  private async forward (peer: string, req: GatewayRequest): Promise<GatewayAnswer> {
    if (peer === this.options.self) {
      const port = this.options.localPort(req.app)
      if (port === undefined) throw new Error('the local instance is not healthy')
      return await askInstance(port, req)
    }
    const signal = AbortSignal.timeout(HOP_TIMEOUT_MS)
    // the protocol name goes out with the request (no round trip of its own): one protocol, and
    // a peer that does not speak it fails the request, which is then tried elsewhere
    const stream = await this.options.host.dialProtocol(peerIdFromString(peer), this.protocol, { signal, negotiateFully: false })
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_RESPONSE_BODY_BYTES + FRAME_SLACK })
      await lp.write(encodeCanonical(req), { signal })
      const answer = decodeGatewayAnswer((await lp.read({ signal })).subarray())
      await stream.close({ signal }).catch(() => {})
      // the far side found no healthy instance: try the next endpoint
      if (answer.status === 503) throw new Error('no healthy instance there')
      return answer
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  /** Answers an HTTP request whose path starts with /app/. */
  async handle (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const match = /^\/app\/([^/]+)(\/.*)?$/.exec(path)
    const app = match?.[1] ?? ''
    const plain = (status: number, text: string): void => { res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(`${text}\n`) }
    if (!APP_NAME.test(app)) { plain(404, 'no such application'); return }
    if (!this.options.known(app)) { plain(404, `no application ${app} is planned in this network`); return }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      if (size > MAX_REQUEST_BODY_BYTES) { plain(413, `request bodies are limited to ${MAX_REQUEST_BODY_BYTES} bytes`); req.destroy(); return }
      chunks.push(chunk as Buffer)
    }
    const query = req.url?.includes('?') === true ? req.url.slice(req.url.indexOf('?')) : ''
    const headers: Array<[string, string]> = []
    for (let i = 0; i < req.rawHeaders.length && headers.length < MAX_HEADERS; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]])
    const forwarded: GatewayRequest = { app, method: req.method ?? 'GET', path: `${match?.[2] ?? '/'}${query}`, headers: cleanHeaders(headers), body: new Uint8Array(Buffer.concat(chunks)) }
    const endpoints = this.options.endpoints(app)
    if (endpoints.length === 0) { plain(503, `no healthy instance of ${app} right now`); return }
    const start = (this.turn.get(app) ?? 0) % endpoints.length
    this.turn.set(app, start + 1)
    const failures: string[] = []
    for (let i = 0; i < Math.min(ATTEMPTS, endpoints.length); i++) {
      const peer = endpoints[(start + i) % endpoints.length]
      try {
        const answer = await this.forward(peer, forwarded)
        res.writeHead(answer.status, Object.fromEntries([...answer.headers, ['x-mycelium-instance', peer]]))
        res.end(answer.body)
        return
      } catch (err) {
        failures.push(`${peer.slice(-8)}: ${(err as Error).message}`)
      }
    }
    this.options.log.warn({ app, failures }, 'gateway: no endpoint answered')
    plain(502, `no instance of ${app} answered (${failures.join('; ')})`)
  }
}
