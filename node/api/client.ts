// The CLI's side of the admin API: finds the daemon of a home directory and calls it, over
// the home's unix socket when the daemon opened one (it works from any network namespace),
// else over 127.0.0.1.
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import type { Home } from '../home/index.ts'
import { ApiError, DaemonNotRunningError } from './errors.ts'

const REQUEST_TIMEOUT_MS = 30_000
/** a stream route sends at least an empty line every 10 s (server.ts): three missed, the daemon is stuck */
const STREAM_IDLE_MS = 30_000
const MAX_STREAM_LINE_BYTES = 4 * 1024 * 1024
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024

export type ApiEndpoint = { port: number } | { socketPath: string }

export class ApiClient {
  private readonly endpoint: ApiEndpoint
  private readonly token: string

  constructor (endpoint: ApiEndpoint | number, token: string) {
    this.endpoint = typeof endpoint === 'number' ? { port: endpoint } : endpoint
    this.token = token
  }

  static forHome (home: Home): ApiClient {
    const info = home.loadDaemonInfo()
    const token = home.loadApiToken()
    if (info === undefined || token === undefined || !processAlive(info.pid)) {
      throw new DaemonNotRunningError(`no daemon is running for ${home.dir} (start one with: mycelium start --home ${home.dir})`)
    }
    return new ApiClient(info.apiSocket !== undefined ? { socketPath: info.apiSocket } : { port: info.apiPort }, token)
  }

  private where (): string {
    return 'socketPath' in this.endpoint ? this.endpoint.socketPath : `http://127.0.0.1:${this.endpoint.port}`
  }

  async request<T = unknown> (method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const options: RequestOptions = {
      ...('socketPath' in this.endpoint ? { socketPath: this.endpoint.socketPath } : { host: '127.0.0.1', port: this.endpoint.port }),
      method,
      path,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(payload.length) })
      },
      timeout: REQUEST_TIMEOUT_MS
    }
    const { status, type, text } = await new Promise<{ status: number, type: string, text: string }>((resolve, reject) => {
      const req = httpRequest(options, (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_RESPONSE_BYTES) { req.destroy(new Error('response too large')); return }
          chunks.push(chunk)
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)))
      req.on('error', (err: NodeJS.ErrnoException) => reject(new DaemonNotRunningError(`cannot reach the daemon's admin API at ${this.where()}: ${err.code ?? err.message}`)))
      req.end(payload)
    })
    if (status < 200 || status >= 300) {
      let message = text
      try { message = JSON.parse(text).error } catch {}
      throw new ApiError(status, message)
    }
    return (type.includes('json') ? JSON.parse(text) : text) as T
  }

  /**
   * Reads a stream route (server.ts StreamRoute): its values one by one as the daemon sends
   * them. An answer other than 2xx throws ApiError with the daemon's message; a daemon that
   * goes away or stays silent for STREAM_IDLE_MS ends the loop with DaemonNotRunningError.
   */
  async * stream<T = unknown> (path: string): AsyncGenerator<T> {
    const options: RequestOptions = {
      ...('socketPath' in this.endpoint ? { socketPath: this.endpoint.socketPath } : { host: '127.0.0.1', port: this.endpoint.port }),
      method: 'GET',
      path,
      headers: { authorization: `Bearer ${this.token}` }
    }
    const req = httpRequest(options)
    req.setTimeout(STREAM_IDLE_MS, () => { req.destroy(new DaemonNotRunningError(`the daemon sent nothing for ${STREAM_IDLE_MS / 1000} s`)) })
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve)
      req.once('error', (err: NodeJS.ErrnoException) => reject(err instanceof DaemonNotRunningError ? err : new DaemonNotRunningError(`cannot reach the daemon's admin API at ${this.where()}: ${err.code ?? err.message}`)))
      req.end()
    })
    try {
      if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) {
        let text = ''
        for await (const chunk of res) text += (chunk as Buffer).toString('utf8')
        let message = text
        try { message = JSON.parse(text).error } catch {}
        throw new ApiError(res.statusCode ?? 0, message)
      }
      let pending = ''
      // characters stay whole across chunks
      res.setEncoding('utf8')
      try {
        for await (const chunk of res) {
          pending += chunk as string
          if (pending.length > MAX_STREAM_LINE_BYTES) throw new Error('a line of the daemon\'s stream is too long')
          let nl
          while ((nl = pending.indexOf('\n')) !== -1) {
            const line = pending.slice(0, nl)
            pending = pending.slice(nl + 1)
            if (line.length > 0) yield JSON.parse(line) as T
          }
        }
      } catch (err) {
        if (err instanceof DaemonNotRunningError) throw err
        throw new DaemonNotRunningError(`the daemon's stream broke: ${(err as Error).message}`)
      }
      if (!res.complete) throw new DaemonNotRunningError('the daemon closed its stream mid-way')
    } finally {
      req.destroy()
    }
  }
}

export function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
