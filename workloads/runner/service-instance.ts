// One application instance supervised on this machine: its process runs in a session of its
// own (so stopping it reaches all it forked), in its cgroup (its limits) and, where the host
// allows it, in PID, mount, IPC and UTS namespaces of its own (namespaced-launch.ts); its output
// goes to rotating logs, its health is checked, and when it exits it is restarted after a
// growing back-off until stop(). Nothing here throws once the spec is accepted: a command that
// cannot be started is an exit like any other, a limit that cannot be had is reported in status.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { detectLimits, withNamespaces, type EnforcedLimits } from './enforced-limits.ts'
import type { InstanceCgroup } from './instance-cgroup.ts'
import { openInstanceCgroup } from './open-instance-cgroup.ts'
import { probeHealth } from './health-probe.ts'
import { NAMESPACES_TURNED_OFF, detectNamespaces, type NamespaceDetector, type NamespaceSupport } from './namespace-support.ts'
import { ADMISSION_FD, appExit, namespacedInvocation } from './namespaced-launch.ts'
import { LIFELINE_FD, withLifeline } from './lifeline.ts'
import { groupAlive, signalGroup } from './process-group.ts'
import { RestartBackoff } from './restart-backoff.ts'
import { RotatingLog } from './rotating-log.ts'
import { locateServiceCommand, serviceCommand, serviceEnvironment, unstartableExitCode } from './service-launch.ts'
import { checkServiceSpec, DEFAULT_BACKOFF, DEFAULT_LOG_MAX_BYTES, type ServiceSpec } from './service-spec.ts'
import type { InstanceExit, InstanceState, InstanceStatus } from './service-status.ts'

export interface ServiceInstanceOptions {
  /** where cgroups are mounted (default /sys/fs/cgroup) */
  cgroupRoot?: string
  /** run the instance in namespaces of its own where the host allows it (default true) */
  namespaces?: boolean
  /** whether the host allows it (default: found out once per process, namespace-support.ts) */
  detectNamespaces?: NamespaceDetector
  log?: (msg: string, fields?: object) => void
}

/** SIGTERM first; what still runs after this is killed */
export const STOP_GRACE_MS = 5_000
/** without a health check, an instance up this long is healthy */
const UP_WITHOUT_HEALTH_MS = 1_000
const FIRST_HEALTH_CHECK_MS = 200
const HEALTH_INTERVAL_MS = 1_000
/** failed checks in a row that make a healthy instance unhealthy */
const HEALTHY_MISSES = 3
/** an app that does not answer its health check at all is still starting, for this long */
const START_GRACE_MS = 30_000
/** healthy this long, and the next crash is restarted after the initial delay again */
const STEADY_MS = 60_000
/** after SIGKILL, how long to wait for the processes to be gone (they can be stuck in the kernel) */
const KILL_WAIT_MS = 2_000
const POLL_MS = 25

export class ServiceInstance {
  readonly #spec: ServiceSpec
  readonly #cgroupRoot: string | undefined
  readonly #namespaces: NamespaceSupport
  readonly #log: (msg: string, fields?: object) => void
  readonly #backoff: RestartBackoff
  readonly #listeners = new Set<(status: InstanceStatus) => void>()
  #state: InstanceState = 'stopped'
  #limits: EnforcedLimits
  #restarts = 0
  #lastExit: InstanceExit | undefined
  #child: ChildProcess | undefined
  /** counts launches, so that news of an earlier process is not taken for the current one */
  #launch = 0
  #startedAt: number | undefined
  #healthySince: number | undefined
  #cgroup: InstanceCgroup | undefined
  #logs: { stdout: RotatingLog, stderr: RotatingLog } | undefined
  #restartTimer: NodeJS.Timeout | undefined
  #healthTimer: NodeJS.Timeout | undefined
  /** between start() and the end of stop(): the instance is wanted (or being let go) */
  #running = false
  #stopping: Promise<void> | undefined
  /** frozen by freeze(): no process of the instance runs, and none is started, until thaw() */
  #frozen = false
  #restartDue = false

  constructor (spec: ServiceSpec, options: ServiceInstanceOptions = {}) {
    checkServiceSpec(spec)
    this.#spec = { ...spec, args: [...spec.args], env: { ...spec.env } }
    this.#cgroupRoot = options.cgroupRoot
    this.#log = options.log ?? (() => {})
    const backoff = spec.backoff ?? DEFAULT_BACKOFF
    this.#backoff = new RestartBackoff(backoff.initialMs, backoff.maxMs)
    this.#namespaces = options.namespaces === false ? NAMESPACES_TURNED_OFF : (options.detectNamespaces ?? detectNamespaces)()
    this.#limits = detectLimits({ cgroupRoot: options.cgroupRoot, detectNamespaces: () => this.#namespaces })
  }

  start (): void {
    if (this.#stopping !== undefined) {
      void this.#stopping.then(() => this.start())
      return
    }
    if (this.#running) return
    this.#running = true
    this.#restarts = 0
    this.#backoff.reset()
    const spec = this.#spec
    const logError = (err: Error): void => this.#log('instance log not written', { instanceId: spec.instanceId, error: err.message })
    try {
      mkdirSync(spec.logDir, { recursive: true })
    } catch (err) {
      logError(err as Error)
    }
    const maxBytes = spec.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES
    this.#logs = { stdout: new RotatingLog(spec.logDir, 'stdout', maxBytes, logError), stderr: new RotatingLog(spec.logDir, 'stderr', maxBytes, logError) }
    this.#cgroup = openInstanceCgroup(spec.instanceId, spec.resources, { cgroupRoot: this.#cgroupRoot })
    this.#limits = withNamespaces(this.#cgroup.limits, this.#namespaces)
    if (this.#limits.reason !== undefined) this.#log('instance limits not all enforced', { instanceId: spec.instanceId, limits: this.#limits })
    this.#launchProcess()
  }

  async stop (): Promise<void> {
    if (this.#stopping !== undefined) return await this.#stopping
    if (!this.#running) return
    this.#stopping = this.#halt().finally(() => { this.#stopping = undefined })
    return await this.#stopping
  }

  /**
   * Stops every process of the instance where it stands (SIGSTOP, which no process can catch or
   * ignore) and holds back restarts: a single-instance application whose lease may lapse must
   * not run one more instruction. thaw() lets it go on.
   */
  freeze (): void {
    if (this.#frozen) return
    this.#frozen = true
    if (this.#restartTimer !== undefined) {
      clearTimeout(this.#restartTimer)
      this.#restartTimer = undefined
      this.#restartDue = true
    }
    const pid = this.#child?.pid
    if (pid !== undefined) signalGroup(pid, 'SIGSTOP')
    this.#cgroup?.signal('SIGSTOP')
    this.#becomeUnhealthy()
  }

  thaw (): void {
    if (!this.#frozen) return
    this.#frozen = false
    const pid = this.#child?.pid
    if (pid !== undefined) signalGroup(pid, 'SIGCONT')
    this.#cgroup?.signal('SIGCONT')
    if (this.#restartDue && this.#running && this.#stopping === undefined) {
      this.#restartDue = false
      this.#restarts++
      this.#launchProcess()
    }
  }

  get frozen (): boolean {
    return this.#frozen
  }

  status (): InstanceStatus {
    return {
      instanceId: this.#spec.instanceId,
      state: this.#state,
      pid: this.#child?.pid,
      port: this.#spec.port,
      restarts: this.#restarts,
      startedAt: this.#startedAt,
      lastExit: this.#lastExit,
      limits: this.#limits
    }
  }

  onChange (listener: (status: InstanceStatus) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  #launchProcess (): void {
    const spec = this.#spec
    const launch = ++this.#launch
    this.#startedAt = Date.now()
    this.#healthySince = undefined
    const invocation = this.#invocation()
    if ('errno' in invocation) {
      this.#setState('starting')
      this.#exited(launch, unstartableExitCode(invocation.errno), null, `${spec.command}: ${invocation.errno}`)
      return
    }
    let child: ChildProcess
    try {
      child = spawn(invocation.command, invocation.args, {
        cwd: spec.dir,
        env: serviceEnvironment(spec),
        // its own session and process group: stop() signals everything it forked
        detached: true,
        // fd 3: the admission gate of a namespaced launch; fd 4: the lifeline (lifeline.ts)
        stdio: ['ignore', 'pipe', 'pipe', invocation.namespaced ? 'pipe' : 'ignore', 'pipe']
      })
    } catch (err) {
      this.#setState('starting')
      this.#exited(launch, unstartableExitCode((err as NodeJS.ErrnoException).code), null, (err as Error).message)
      return
    }
    // the daemon's end of the lifeline stays open as long as the daemon lives; it keeps no
    // event loop alive, and it is closed only by the daemon's end
    const lifeline = child.stdio[LIFELINE_FD] as (NodeJS.ReadableStream & { unref?: () => void }) | null
    lifeline?.unref?.()
    const pid = child.pid
    if (pid === undefined) {
      // not started (no such command, not executable, no such dir): reported by 'error' alone
      child.once('error', (err: NodeJS.ErrnoException) => this.#exited(launch, unstartableExitCode(err.code), null, err.message))
      this.#setState('starting')
      return
    }
    this.#child = child
    this.#cgroup?.admit(pid)
    if (this.#cgroup !== undefined) this.#limits = withNamespaces(this.#cgroup.limits, this.#namespaces)
    // admitted: a namespaced launch may go on, and all it forks is born in the cgroup
    child.stdio[ADMISSION_FD]?.destroy()
    const logs = this.#logs
    child.stdout?.on('data', (chunk: Buffer) => logs?.stdout.write(chunk))
    child.stderr?.on('data', (chunk: Buffer) => logs?.stderr.write(chunk))
    child.on('error', err => this.#log('instance process error', { instanceId: spec.instanceId, pid, error: err.message }))
    child.once('exit', (code, signal) => {
      const end = invocation.namespaced ? appExit(code, signal) : { code, signal }
      this.#exited(launch, end.code, end.signal)
    })
    this.#setState('starting')
    this.#watchHealth(child)
  }

  /** What to spawn: the command itself, or, in namespaces of its own, the file it names behind unshare. */
  #invocation (): { command: string, args: string[], namespaced: boolean } | { errno: string } {
    const spec = this.#spec
    if (!('unshare' in this.#namespaces)) return { ...withLifeline(serviceCommand(spec), spec.args), namespaced: false }
    // the exec happens behind unshare, where a missing command would be an exit code like others
    const located = locateServiceCommand(spec)
    if ('errno' in located) return located
    return { ...namespacedInvocation(this.#namespaces.unshare, located.file, spec.args, serviceEnvironment(spec)), namespaced: true }
  }

  #exited (launch: number, code: number | null, signal: string | null, why?: string): void {
    if (launch !== this.#launch) return
    const spec = this.#spec
    const child = this.#child
    clearTimeout(this.#healthTimer)
    this.#child = undefined
    this.#lastExit = { code, signal, at: Date.now() }
    this.#log('instance exited', { instanceId: spec.instanceId, code, signal, error: why })
    if (this.#stopping !== undefined || !this.#running) return // stop() sees to the rest
    if (child?.pid !== undefined) {
      // what the process forked goes with it: a restart must not find the port taken
      signalGroup(child.pid, 'SIGKILL')
      this.#cgroup?.signal('SIGKILL')
    }
    if (this.#healthySince !== undefined && Date.now() - this.#healthySince >= STEADY_MS) this.#backoff.reset()
    this.#healthySince = undefined
    const delay = this.#backoff.next()
    this.#setState('backoff')
    if (this.#frozen) { this.#restartDue = true; return }
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined
      this.#restarts++
      this.#launchProcess()
    }, delay)
  }

  #watchHealth (child: ChildProcess): void {
    const health = this.#spec.health
    const current = (): boolean => this.#child === child && this.#stopping === undefined
    if (health === undefined) {
      this.#healthTimer = setTimeout(() => { if (current()) this.#becomeHealthy() }, UP_WITHOUT_HEALTH_MS)
      return
    }
    let misses = 0
    const check = async (): Promise<void> => {
      const answer = await probeHealth(this.#spec.port, health.http)
      if (!current()) return
      misses = answer === 'healthy' ? 0 : misses + 1
      if (answer === 'healthy') this.#becomeHealthy()
      // a healthy instance is taken out of the gateway only after several checks in a row fail:
      // one probe that times out on a busy machine says nothing about the instance
      else if (this.#state === 'healthy') { if (misses >= HEALTHY_MISSES) this.#becomeUnhealthy() } else if (answer === 'failing' || this.#state !== 'starting' || Date.now() - (this.#startedAt ?? 0) > START_GRACE_MS) this.#becomeUnhealthy()
      this.#healthTimer = setTimeout(() => { void check() }, HEALTH_INTERVAL_MS)
    }
    this.#healthTimer = setTimeout(() => { void check() }, FIRST_HEALTH_CHECK_MS)
  }

  #becomeHealthy (): void {
    if (this.#state === 'healthy') return
    this.#healthySince = Date.now()
    this.#setState('healthy')
  }

  #becomeUnhealthy (): void {
    this.#healthySince = undefined
    this.#setState('unhealthy')
  }

  async #halt (): Promise<void> {
    clearTimeout(this.#restartTimer)
    clearTimeout(this.#healthTimer)
    this.#restartTimer = undefined
    const child = this.#child
    const pgid = child?.pid
    if (this.#frozen) {
      // a frozen instance is stopped only when its lease is in doubt: it must not run again,
      // not even to handle SIGTERM, so it is killed where it stands
      this.#frozen = false
      this.#restartDue = false
      if (pgid !== undefined) signalGroup(pgid, 'SIGKILL')
      this.#cgroup?.signal('SIGKILL')
    }
    if (pgid !== undefined) {
      const gone = (): boolean => this.#child === undefined && !groupAlive(pgid) && (this.#cgroup?.members().length ?? 0) === 0
      signalGroup(pgid, 'SIGTERM')
      // a process that left the group (its own setsid) is still in the cgroup
      this.#cgroup?.signal('SIGTERM')
      if (!await this.#until(gone, STOP_GRACE_MS)) {
        this.#log('instance did not stop on SIGTERM; killing it', { instanceId: this.#spec.instanceId, pid: pgid })
        signalGroup(pgid, 'SIGKILL')
        this.#cgroup?.signal('SIGKILL')
        await this.#until(gone, KILL_WAIT_MS)
      }
      // the last output still in the pipes
      await this.#until(() => child?.stdout?.readableEnded !== false && child?.stderr?.readableEnded !== false, 500)
    }
    const problem = await this.#cgroup?.remove()
    if (problem !== undefined) this.#log('instance cgroup not removed', { instanceId: this.#spec.instanceId, problem })
    this.#cgroup = undefined
    this.#logs?.stdout.close()
    this.#logs?.stderr.close()
    this.#logs = undefined
    this.#child = undefined
    this.#launch++
    this.#running = false
    this.#setState('stopped')
  }

  async #until (condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() >= deadline) return false
      await sleep(POLL_MS)
    }
    return true
  }

  #setState (state: InstanceState): void {
    if (this.#state === state) return
    this.#state = state
    const status = this.status()
    for (const listener of this.#listeners) {
      try {
        listener(status)
      } catch (err) {
        this.#log('instance status listener failed', { instanceId: this.#spec.instanceId, error: (err as Error).message })
      }
    }
  }
}
