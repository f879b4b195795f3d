// What the runner can hold an instance to on this machine, read from the cgroup filesystem
// and said plainly: a node publishing an instance's health also says what was enforced and,
// where something was not, why. Hosts differ: pure cgroup v2 (`cgroup.controllers` at the
// root), cgroup v1 (one hierarchy per controller, as on this project's test machine, where an
// empty cgroup2 at `unified/` holds no controllers), or nothing writable (not root, a
// read-only mount, not Linux). Detection only predicts; an instance's own limits say what its
// writes actually achieved (instance-cgroup.ts). The namespaces an instance gets are found out
// apart from the cgroups (namespace-support.ts) and joined in here.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { detectNamespaces, type NamespaceDetector, type NamespaceSupport } from './namespace-support.ts'

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup'

export interface EnforcedLimits {
  cgroup: 'v2' | 'v1' | 'none'
  memory: boolean
  cpu: boolean
  pids: boolean
  /** the instance runs in its own session and process group, so stopping it reaches all it forked */
  session: boolean
  /** namespaces of its own the instance runs in: pid, mount, ipc, uts (and user, for a daemon not root) */
  namespaces: string[]
  /** why something is not enforced */
  reason?: string
}

export type Controller = 'memory' | 'cpu' | 'pids'
export const CONTROLLERS: readonly Controller[] = ['memory', 'cpu', 'pids']

/** A v1 hierarchy is usable for a limit when the file that sets it is there. */
export const V1_LIMIT_FILE: Record<Controller, string> = {
  memory: 'memory.limit_in_bytes',
  cpu: 'cpu.cfs_quota_us',
  // the root of the pids hierarchy has no pids.max; its children do
  pids: 'cgroup.procs'
}

export function detectLimits (options: { cgroupRoot?: string, detectNamespaces?: NamespaceDetector } = {}): EnforcedLimits {
  return withNamespaces(detectCgroups(options), (options.detectNamespaces ?? detectNamespaces)())
}

/** The limits with the namespaces an instance gets, or why it gets none. */
export function withNamespaces (limits: EnforcedLimits, support: NamespaceSupport): EnforcedLimits {
  if ('unshare' in support) return { ...limits, namespaces: [...support.unshare.namespaces] }
  return { ...limits, namespaces: [], reason: limits.reason === undefined ? support.reason : `${limits.reason}; ${support.reason}` }
}

/** What cgroups can hold an instance to; no namespaces. */
export function detectCgroups (options: { cgroupRoot?: string } = {}): EnforcedLimits {
  const root = options.cgroupRoot ?? DEFAULT_CGROUP_ROOT
  const session = process.platform !== 'win32'
  if (process.platform !== 'linux') return unenforced(session, `cgroups exist only on Linux, this is ${process.platform}`)
  if (existsSync(join(root, 'cgroup.controllers'))) return detectV2(root, session)
  if (CONTROLLERS.some(c => existsSync(join(root, c, 'cgroup.procs')))) return detectV1(root, session)
  return unenforced(session, `no cgroup hierarchy under ${root}`)
}

export function unenforced (session: boolean, reason: string): EnforcedLimits {
  return { cgroup: 'none', memory: false, cpu: false, pids: false, session, namespaces: [], reason }
}

function detectV2 (root: string, session: boolean): EnforcedLimits {
  const unwritable = writeProblem(root)
  if (unwritable !== undefined) return unenforced(session, `cgroup v2 at ${root} is not writable (${unwritable})`)
  const available = readFileSync(join(root, 'cgroup.controllers'), 'utf8').split(/\s+/)
  const limits: EnforcedLimits = { cgroup: 'v2', memory: false, cpu: false, pids: false, session, namespaces: [] }
  const missing: string[] = []
  for (const c of CONTROLLERS) {
    limits[c] = available.includes(c)
    if (!limits[c]) missing.push(c)
  }
  if (missing.length > 0) limits.reason = `cgroup v2 at ${root} offers no ${missing.join(', ')} controller`
  return limits
}

function detectV1 (root: string, session: boolean): EnforcedLimits {
  const limits: EnforcedLimits = { cgroup: 'v1', memory: false, cpu: false, pids: false, session, namespaces: [] }
  const reasons: string[] = []
  for (const c of CONTROLLERS) {
    const hierarchy = join(root, c)
    if (!existsSync(join(hierarchy, V1_LIMIT_FILE[c]))) {
      reasons.push(`no ${c} hierarchy at ${hierarchy}`)
      continue
    }
    const unwritable = writeProblem(hierarchy)
    if (unwritable !== undefined) reasons.push(`${hierarchy} is not writable (${unwritable})`)
    else limits[c] = true
  }
  if (!limits.memory && !limits.cpu && !limits.pids) return unenforced(session, `cgroup v1 under ${root}: ${reasons.join('; ')}`)
  if (reasons.length > 0) limits.reason = `cgroup v1: ${reasons.join('; ')}`
  return limits
}

function writeProblem (dir: string): string | undefined {
  try {
    accessSync(dir, constants.W_OK)
    return undefined
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  }
}
