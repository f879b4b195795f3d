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

/** What a JSON endpoint of the public site answers. */
export interface SiteAnswer {
  status: number
  body: unknown
  headers?: Record<string, string>
}

/** A small JSON endpoint of the public site (browser join requests); `remoteAddress` is the socket's, for per-source limits. */
export type SiteEndpoint = (request: { path: string, body: unknown, remoteAddress: string | undefined }) => SiteAnswer | Promise<SiteAnswer>

export interface StaticSiteOptions {
  files: () => Map<string, SiteFile>
  /** undefined while this node may serve; otherwise why not (e.g. it is no sclerotium) */
  refusal: () => string | undefined
  /** by "METHOD /path" (that path only) or "METHOD /prefix/" (every path under it) */
  endpoints?: Record<string, SiteEndpoint>
  /** requests under /app/ go to the application gateway (workloads), any method */
  gateway?: (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>
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

/**
 * The path of an origin-form request target ("/path?query"), or undefined when the target is
 * anything else: "//host/…", "http://…", "*", "%zz", a path whose %-escapes do not decode, or
 * what the URL parser refuses. Endpoints may decodeURIComponent the path safely.
 */
export function requestPath (target: string | undefined): string | undefined {
  if (target === undefined || !target.startsWith('/')) return undefined
  try {
    const url = new URL(target, 'http://localhost')
    // "//evil/…" or "/\\evil/…" name another host: not a path of this server
    if (url.origin !== 'http://localhost') return undefined
    decodeURIComponent(url.pathname)
    return url.pathname
  } catch {
    return undefined
  }
}

/** The last resort of a request whose handling threw: a bare 500, or a cut connection. */
function failed (res: ServerResponse): void {
  try {
    if (res.headersSent) res.destroy()
    else res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', connection: 'close', ...SECURITY_HEADERS }).end('internal error\n')
  } catch {
    res.destroy()
  }
}

export class StaticSite {
  private readonly server: Server
  private readonly options: StaticSiteOptions

  constructor (options: StaticSiteOptions) {
    this.options = options
    // a request must never end the process: whatever escapes handle() is answered here
    this.server = createServer((req, res) => { this.handle(req, res).catch(() => { failed(res) }) })
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
    try {
      await this.answer(req, res)
    } catch {
      failed(res)
    }
  }

  private async answer (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = requestPath(req.url)
    if (path === undefined) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close', ...SECURITY_HEADERS }).end('malformed request target: expected a path such as /index.html\n')
      return
    }
    if (this.options.gateway !== undefined && path.startsWith('/app/')) {
      await this.options.gateway(req, res, path)
      return
    }
    const endpoint = Object.entries(this.options.endpoints ?? {}).find(([key]) => {
      const [method, prefix] = key.split(' ')
      return req.method === method && (prefix.endsWith('/') ? path.startsWith(prefix) : path === prefix)
    })?.[1]
    if (endpoint !== undefined) {
      try {
        // read before the body: a body over the limit is cut off, and that detaches the socket
        const remoteAddress = req.socket.remoteAddress
        const body = req.method === 'POST' ? await readJsonBody(req) : undefined
        const answer = await endpoint({ path, body, remoteAddress })
        res.writeHead(answer.status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...answer.headers, ...SECURITY_HEADERS }).end(JSON.stringify(answer.body))
      } catch {
        // the page reads JSON; the error itself (paths of the home, …) is not for the public
        if (res.headersSent) res.destroy()
        else res.writeHead(500, { 'content-type': 'application/json', 'cache-control': 'no-store', ...SECURITY_HEADERS }).end(JSON.stringify({ error: 'internal error' }))
      }
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain', ...SECURITY_HEADERS }).end('method not allowed\n')
      return
    }
    const refusal = this.options.refusal()
    if (refusal !== undefined) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end(`${refusal}\n`)
      return
    }
    // files are held in memory under their names: no path ever reaches the file system
    const file = this.options.files().get(path === '/' ? '/index.html' : path)
    if (file === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end('not found\n')
      return
    }
    res.writeHead(200, { 'content-type': file.contentType, 'content-length': file.body.length, 'cache-control': 'no-cache', ...SECURITY_HEADERS })
    res.end(req.method === 'HEAD' ? undefined : file.body)
  }
}
