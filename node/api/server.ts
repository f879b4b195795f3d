// The admin API: HTTP on 127.0.0.1 only, and on a unix socket (0600) in the home directory,
// every route behind the bearer token from the home directory. The CLI is its main client;
// the socket serves it across network namespaces and never touches a port.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import { chmodSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { ApiError } from './errors.ts'

export interface ApiRequest {
  query: URLSearchParams
  body: unknown
}

export type ApiHandler = (request: ApiRequest) => Promise<unknown> | unknown
/** A route answering with text (Prometheus metrics) instead of JSON. */
export interface TextRoute { text: true, contentType: string, handler: () => Promise<string> | string }
/**
 * A route answering with a stream of JSON values, one a line (application/x-ndjson), for as long
 * as it has any: the handler checks the request and opens its source (an ApiError it throws
 * is the answer, as for any route), and the values go out as the client takes them. `signal`
 * aborts when the client goes away.
 */
export interface StreamRoute { stream: true, handler: (request: ApiRequest, signal: AbortSignal) => Promise<AsyncIterable<unknown>> }
export type Routes = Record<string, ApiHandler | TextRoute | StreamRoute>

const MAX_BODY_BYTES = 1024 * 1024
/** an empty line this often on a quiet stream: the client tells a quiet daemon from a stuck one */
export const STREAM_KEEPALIVE_MS = 10_000

async function readBody (req: IncomingMessage): Promise<unknown> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'request body too large')
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return undefined
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ApiError(400, 'request body is not JSON')
  }
}

function authorized (req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? ''
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '')
  const expected = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

export class AdminApi {
  private readonly server: Server
  private socketServer?: Server
  private socketPath?: string
  private readonly routes: Routes
  private readonly token: string

  constructor (routes: Routes, token: string) {
    this.routes = routes
    this.token = token
    this.server = createServer((req, res) => { this.serve(req, res) })
  }

  /**
   * Also serves the API on a unix socket; answers whether it could. The caller guarantees no
   * other daemon owns the home, so a socket file left by a crashed daemon is removed first.
   * Paths longer than the kernel's limit (108 bytes) are refused by listen: the TCP port serves.
   */
  async listenSocket (path: string): Promise<boolean> {
    if (Buffer.byteLength(path) > 100) return false
    rmSync(path, { force: true })
    const server = createServer((req, res) => { this.serve(req, res) })
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false))
      server.listen(path, () => resolve(true))
    })
    if (!listening) return false
    chmodSync(path, 0o600)
    this.socketServer = server
    this.socketPath = path
    return true
  }

  async listen (port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(err.code === 'EADDRINUSE' ? new ApiError(0, `admin API port ${port} is in use (choose another with --api-port, or stop the other daemon)`) : err)
      }
      this.server.once('error', onError)
      this.server.listen(port, '127.0.0.1', () => { this.server.off('error', onError); resolve() })
    })
    return (this.server.address() as AddressInfo).port
  }

  async close (): Promise<void> {
    for (const server of [this.server, this.socketServer]) {
      if (server === undefined || !server.listening) continue
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
    if (this.socketPath !== undefined) rmSync(this.socketPath, { force: true })
  }

  /** A request must never end the daemon: whatever escapes handle() cuts that connection only. */
  private serve (req: IncomingMessage, res: ServerResponse): void {
    this.handle(req, res).catch(() => { res.destroy() })
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!authorized(req, this.token)) throw new ApiError(401, 'missing or wrong API token')
      let url: URL
      try {
        url = new URL(req.url ?? '/', 'http://127.0.0.1')
      } catch {
        throw new ApiError(400, 'malformed request target: expected a path such as /status')
      }
      const route = this.routes[`${req.method ?? 'GET'} ${url.pathname}`]
      if (route === undefined) throw new ApiError(404, `no such endpoint: ${req.method} ${url.pathname}`)
      if (typeof route === 'object' && 'stream' in route) {
        await this.stream(route, { query: url.searchParams, body: await readBody(req) }, res)
        return
      }
      if (typeof route === 'object') {
        const text = await route.handler()
        res.writeHead(200, { 'content-type': route.contentType })
        res.end(text)
        return
      }
      const result = await route({ query: url.searchParams, body: await readBody(req) })
      const json = JSON.stringify(result ?? {})
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(json)
    } catch (err) {
      // writeHead throws on a number that is no HTTP error status
      const status = err instanceof ApiError && err.status >= 400 && err.status <= 599 ? err.status : 500
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: (err as Error).message }))
    }
  }

  private async stream (route: StreamRoute, request: ApiRequest, res: ServerResponse): Promise<void> {
    const gone = new AbortController()
    res.on('close', () => { gone.abort() })
    const values = await route.handler(request, gone.signal)
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
    const keepAlive = setInterval(() => { res.write('\n') }, STREAM_KEEPALIVE_MS)
    try {
      for await (const value of values) {
        if (gone.signal.aborted) break
        // the source is asked for more only once the client has taken this
        if (!res.write(JSON.stringify(value) + '\n')) await once(res, 'drain', { signal: gone.signal }).catch(() => {})
      }
    } catch (err) {
      if (!gone.signal.aborted) res.write(JSON.stringify({ error: (err as Error).message }) + '\n')
    } finally {
      clearInterval(keepAlive)
      res.end()
    }
  }
}
