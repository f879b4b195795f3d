// The public HTTP server of a sclerotium: it serves the hyphae web client (three files held in
// memory) and nothing else. Separate from the admin API, which stays on 127.0.0.1.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface SiteFile {
  body: Buffer
  contentType: string
}

export class HttpPortInUseError extends Error {
  readonly name = 'HttpPortInUseError'
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // the page talks to sclerotia over WebSockets, to pages over WebRTC; nothing else
  'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
}

/** A small JSON endpoint of the public site (browser join requests). */
export type SiteEndpoint = (request: { path: string, body: unknown }) => { status: number, body: unknown }

export interface StaticSiteOptions {
  files: () => Map<string, SiteFile>
  /** undefined while this node may serve; otherwise why not (e.g. it is no sclerotium) */
  refusal: () => string | undefined
  /** by "METHOD /path-prefix/" */
  endpoints?: Record<string, SiteEndpoint>
}

const MAX_BODY_BYTES = 1024

async function readJsonBody (req: IncomingMessage): Promise<unknown> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) return undefined
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return undefined
  }
}

export class StaticSite {
  private readonly server: Server
  private readonly options: StaticSiteOptions

  constructor (options: StaticSiteOptions) {
    this.options = options
    this.server = createServer((req, res) => { void this.handle(req, res) })
  }

  async listen (port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(err.code === 'EADDRINUSE' ? new HttpPortInUseError(`HTTP port ${port} is in use (choose another with --http-port, 0 = any free port)`) : err)
      }
      this.server.once('error', onError)
      this.server.listen(port, host, () => { this.server.off('error', onError); resolve() })
    })
    return (this.server.address() as AddressInfo).port
  }

  async close (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    const endpoint = Object.entries(this.options.endpoints ?? {}).find(([key]) => {
      const [method, prefix] = key.split(' ')
      return req.method === method && (path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`))
    })?.[1]
    if (endpoint !== undefined) {
      try {
        const body = req.method === 'POST' ? await readJsonBody(req) : undefined
        const answer = endpoint({ path, body })
        res.writeHead(answer.status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...SECURITY_HEADERS }).end(JSON.stringify(answer.body))
      } catch (err) {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: (err as Error).message }))
      }
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n')
      return
    }
    const refusal = this.options.refusal()
    if (refusal !== undefined) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end(`${refusal}\n`)
      return
    }
    const file = this.options.files().get(path === '/' ? '/index.html' : path)
    if (file === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end('not found\n')
      return
    }
    res.writeHead(200, { 'content-type': file.contentType, 'content-length': file.body.length, 'cache-control': 'no-cache', ...SECURITY_HEADERS })
    res.end(req.method === 'HEAD' ? undefined : file.body)
  }
}
