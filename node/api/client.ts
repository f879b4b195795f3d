// The CLI's side of the admin API: finds the daemon of a home directory and calls it, over
// the home's unix socket when the daemon opened one (it works from any network namespace),
// else over 127.0.0.1.
import { request as httpRequest, type RequestOptions } from 'node:http'
import type { Home } from '../home/index.ts'
import { ApiError, DaemonNotRunningError } from './errors.ts'

const REQUEST_TIMEOUT_MS = 30_000
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
}

export function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
