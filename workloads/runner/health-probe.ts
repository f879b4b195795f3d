// One health check of an instance: GET http://127.0.0.1:<port><path>, healthy on a 2xx answer
// within the time allowed. Whether the app answered at all matters while it starts: an app not
// yet listening is still starting, one answering 500 is unhealthy.
import { request } from 'node:http'

export const HEALTH_TIMEOUT_MS = 2_000

export type HealthAnswer = 'healthy' | 'failing' | 'silent'

export async function probeHealth (port: number, path: string, timeoutMs = HEALTH_TIMEOUT_MS): Promise<HealthAnswer> {
  return await new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent: false }, res => {
      res.resume()
      finish((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300 ? 'healthy' : 'failing')
    })
    // the whole check, not only an idle socket, must fit in the time allowed
    const timer = setTimeout(() => finish('silent'), timeoutMs)
    function finish (answer: HealthAnswer): void {
      clearTimeout(timer)
      req.destroy()
      resolve(answer)
    }
    req.on('error', () => finish('silent'))
    req.end()
  })
}
