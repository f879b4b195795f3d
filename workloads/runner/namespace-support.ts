// Whether this machine lets the runner give an instance namespaces of its own: PID (with its own
// /proc), mount, IPC and UTS. Found out once per process by doing it, since neither the kernel's
// version nor a sysctl says it for sure (a host may forbid unprivileged user namespaces, an
// AppArmor policy may let one be made and then refuse what happens inside): util-linux's unshare
// runs `true` in such namespaces, briefly. Root may make them; another user only inside a user
// namespace of its own, which keeps its own uid there. There is no network namespace: an instance
// listens on 127.0.0.1 of the host, where the node's gateway and health checks reach it.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { locateExecutable } from './executable-file.ts'

export interface Unshare {
  /** the unshare program */
  program: string
  /** what makes the namespaces, and kills them with the process unshare forks into them */
  flags: string[]
  namespaces: string[]
}

export type NamespaceSupport = { unshare: Unshare } | { reason: string }

/** Says whether instances can have namespaces here; injected where a test needs a host without them. */
export type NamespaceDetector = () => NamespaceSupport

const PROBE_TIMEOUT_MS = 2_000
const OWN_NAMESPACES = { flags: ['--fork', '--kill-child', '--pid', '--mount-proc', '--mount', '--ipc', '--uts'], namespaces: ['pid', 'mount', 'ipc', 'uts'] }
/** --map-current-user came with util-linux 2.38; an older unshare can still map the user to root */
const AS_ANOTHER_USER = [['--user', '--map-current-user'], ['--user', '--map-root-user']]
const FALLBACK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

let detected: NamespaceSupport | undefined

export function detectNamespaces (): NamespaceSupport {
  detected ??= detectOnce()
  return detected
}

/** What an instance told not to use namespaces reports. */
export const NAMESPACES_TURNED_OFF: NamespaceSupport = { reason: 'namespaces are turned off for this instance' }

function detectOnce (): NamespaceSupport {
  if (process.platform !== 'linux') return { reason: `namespaces exist only on Linux, this is ${process.platform}` }
  const found = locateExecutable('unshare', { PATH: `${process.env.PATH ?? ''}:${FALLBACK_PATH}`, dir: '/' })
  if (!('file' in found)) return { reason: 'no namespaces: util-linux\'s unshare is not on this machine' }
  return probeNamespaces(found.file)
}

/** Runs `program` as unshare would be run for an instance; supported when `true` ran inside. */
export function probeNamespaces (program: string, timeoutMs = PROBE_TIMEOUT_MS): NamespaceSupport {
  const userFlags = process.getuid?.() === 0 ? [[]] : AS_ANOTHER_USER
  const failures: string[] = []
  for (const user of userFlags) {
    const flags = [...user, ...OWN_NAMESPACES.flags]
    const result = spawnSync(program, [...flags, 'true'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' })
    if (result.status === 0) {
      const namespaces = user.length > 0 ? ['user', ...OWN_NAMESPACES.namespaces] : [...OWN_NAMESPACES.namespaces]
      return { unshare: { program, flags, namespaces } }
    }
    failures.push(failure(program, flags, result, timeoutMs))
  }
  return { reason: `no namespaces: ${failures.join('; ')}` }
}

function failure (program: string, flags: string[], result: SpawnSyncReturns<string>, timeoutMs: number): string {
  const tried = `${program} ${flags.join(' ')} true`
  const code = (result.error as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ETIMEDOUT') return `${tried} did not finish within ${timeoutMs} ms`
  if (result.error !== undefined) return `${tried} could not be run (${code ?? result.error.message})`
  const said = result.stderr.trim().split('\n')[0]
  const ended = result.signal !== null ? `was killed by ${result.signal}` : `exited with ${String(result.status)}`
  return `${tried} ${ended}${said === undefined || said === '' ? '' : `: ${said}`}`
}
