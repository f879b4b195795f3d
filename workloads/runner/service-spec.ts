// What a node is asked to run as a long-lived service: an unpacked bundle, its command, the
// port it must listen on and what it may use. Checked once, when an instance is made.
import { InvalidSpecError, checkInstanceId, checkPositive } from './invalid-spec-error.ts'

export interface ServiceSpec {
  /** [a-z0-9-]{1,80}; names the instance's cgroup */
  instanceId: string
  /** working directory: the unpacked bundle */
  dir: string
  /** an absolute path, a path relative to dir, or a program on PATH */
  command: string
  args: string[]
  /** merged over a minimal environment (PATH, HOME=dir, LANG); PORT is the runner's */
  env: Record<string, string>
  /** the port the instance must listen on, given to it as PORT */
  port: number
  resources: { cpuMillis: number, memoryMb: number }
  /** GET http://127.0.0.1:PORT<path> must answer 2xx within 2 s; without it, running for 1 s is healthy */
  health?: { http: string }
  /** stdout.log and stderr.log, rotated */
  logDir: string
  /** per file before rotation (default 1 MiB); 3 old files are kept */
  logMaxBytes?: number
  /** default 500 ms doubling to 30 s, reset after 60 s healthy */
  backoff?: { initialMs: number, maxMs: number }
}

export const DEFAULT_LOG_MAX_BYTES = 1024 * 1024
export const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 }

export function checkServiceSpec (spec: ServiceSpec): void {
  checkInstanceId(spec.instanceId)
  if (typeof spec.dir !== 'string' || spec.dir.length === 0) throw new InvalidSpecError('dir', 'must be a directory')
  if (typeof spec.command !== 'string' || spec.command.length === 0) throw new InvalidSpecError('command', 'must not be empty')
  if (!Array.isArray(spec.args) || !spec.args.every(a => typeof a === 'string')) throw new InvalidSpecError('args', 'must be strings')
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new InvalidSpecError('port', `must be a TCP port, got ${String(spec.port)}`)
  checkPositive('resources.cpuMillis', spec.resources?.cpuMillis)
  checkPositive('resources.memoryMb', spec.resources?.memoryMb)
  if (spec.health !== undefined && (typeof spec.health.http !== 'string' || !spec.health.http.startsWith('/'))) throw new InvalidSpecError('health.http', 'must be a path starting with /')
  if (typeof spec.logDir !== 'string' || spec.logDir.length === 0) throw new InvalidSpecError('logDir', 'must be a directory')
  if (spec.logMaxBytes !== undefined) checkPositive('logMaxBytes', spec.logMaxBytes)
  if (spec.backoff !== undefined) {
    checkPositive('backoff.initialMs', spec.backoff.initialMs)
    if (!(spec.backoff.maxMs >= spec.backoff.initialMs)) throw new InvalidSpecError('backoff.maxMs', 'must be at least backoff.initialMs')
  }
}
