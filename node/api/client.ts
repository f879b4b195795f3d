// The CLI's side of the admin API: finds the daemon of a home directory and calls it.
import type { Home } from '../home/index.ts'
import { ApiError, DaemonNotRunningError } from './errors.ts'

export class ApiClient {
  private readonly base: string
  private readonly token: string

  constructor (port: number, token: string) {
    this.base = `http://127.0.0.1:${port}`
    this.token = token
  }

  static forHome (home: Home): ApiClient {
    const info = home.loadDaemonInfo()
    const token = home.loadApiToken()
    if (info === undefined || token === undefined || !processAlive(info.pid)) {
      throw new DaemonNotRunningError(`no daemon is running for ${home.dir} (start one with: mycelium start --home ${home.dir})`)
    }
    return new ApiClient(info.apiPort, token)
  }

  async request<T = unknown> (method: string, path: string, body?: unknown): Promise<T> {
    let res: Response
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000)
      })
    } catch (err) {
      throw new DaemonNotRunningError(`cannot reach the daemon's admin API at ${this.base}: ${(err as Error).cause !== undefined ? String((err as any).cause.code ?? (err as any).cause) : (err as Error).message}`)
    }
    const text = await res.text()
    if (!res.ok) {
      let message = text
      try { message = JSON.parse(text).error } catch {}
      throw new ApiError(res.status, message)
    }
    const type = res.headers.get('content-type') ?? ''
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
