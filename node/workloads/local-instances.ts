// The instances this node runs: a service as a supervised process (workloads/runner), a job as
// a WebAssembly module run to completion. Each lives in <home>/apps/instances/<name>/ with the
// unpacked bundle and its logs; its state goes to `onChange`, which publishes the endpoint
// record the gateway and the other nodes read.
import { mkdirSync, rmSync, existsSync, writeFileSync, utimesSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { sha256, toHex } from '../../crypto/index.ts'
import { ServiceInstance, runWasiJob, freePort, detectLimits, type InstanceStatus, type JobResult, type EnforcedLimits } from '../../workloads/runner/index.ts'
import { unpackBundle, entrypointFor, type SignedBundle, type Arch } from '../../workloads/bundle/index.ts'
import type { Logger } from '../log/index.ts'
import type { InstanceDirUse } from './instance-dir-collector.ts'

export type InstanceHealth = 'starting' | 'healthy' | 'unhealthy' | 'done'

export interface LocalInstanceView {
  name: string
  digest: string
  version: string
  kind: 'service' | 'job'
  health: InstanceHealth
  state: string
  port?: number
  pid?: number
  restarts: number
  startedAt: number
  lastExit?: InstanceStatus['lastExit']
  job?: JobResult
  limits: EnforcedLimits
}

const JOB_TIMEOUT_MS = 10 * 60_000

interface Running {
  name: string
  digest: string
  version: string
  kind: 'service' | 'job'
  startedAt: number
  dir: string
  logDir: string
  service?: ServiceInstance
  port?: number
  job?: JobResult
  jobRunning?: Promise<void>
  failed?: string
}

export class LocalInstances {
  private readonly root: string
  private readonly arch: Arch
  private readonly log: Logger
  private readonly onChange: (name: string) => void
  private readonly running = new Map<string, Running>()
  /**
   * Part of every instance id, which names the instance's cgroup. The cgroup's path is under the
   * daemon's own cgroup, and several daemons on one machine may share that (a test cluster, two
   * nodes under one service manager): without this, a daemon starting or stopping an instance
   * of the same application and bundle killed the other daemon's processes as its leftovers.
   * From this node's home, so it stays the same when the daemon restarts and still finds the
   * leftovers of its own earlier run.
   */
  private readonly owner: string
  /** names being started or stopped: their directories are being written or still used */
  private readonly busy = new Map<string, number>()
  #limits: EnforcedLimits | undefined

  constructor (options: { dir: string, arch: Arch, log: Logger, onChange: (name: string) => void }) {
    this.root = options.dir
    this.arch = options.arch
    this.log = options.log
    this.onChange = options.onChange
    this.owner = toHex(sha256(new TextEncoder().encode(resolve(this.root)))).slice(0, 8)
    mkdirSync(this.root, { recursive: true })
  }

  /**
   * What this machine can hold an instance to. Found out when first asked (status, the first
   * instance), not at start: finding the namespaces runs util-linux's unshare, a child process
   * that held every daemon's start-up for ~30 ms of blocked event loop.
   */
  get limits (): EnforcedLimits {
    this.#limits ??= detectLimits()
    return this.#limits
  }

  names (): string[] {
    return [...this.running.keys()]
  }

  digestOf (name: string): string | undefined {
    return this.running.get(name)?.digest
  }

  health (name: string): InstanceHealth | undefined {
    const r = this.running.get(name)
    if (r === undefined) return undefined
    if (r.kind === 'job') return r.job === undefined ? 'starting' : 'done'
    const state = r.service?.status().state
    return state === 'healthy' ? 'healthy' : state === 'starting' ? 'starting' : 'unhealthy'
  }

  /** The port of a healthy service instance of `name`. */
  healthyPort (name: string): number | undefined {
    const r = this.running.get(name)
    return r !== undefined && this.health(name) === 'healthy' ? r.port : undefined
  }

  logDirOf (name: string): string | undefined {
    return this.running.get(name)?.logDir ?? (existsSync(join(this.root, name, 'logs')) ? join(this.root, name, 'logs') : undefined)
  }

  /** What the directory collector must leave alone (instance-dir-collector.ts). */
  dirUse (): InstanceDirUse {
    return { busy: new Set(this.busy.keys()), running: new Map([...this.running].map(([name, r]) => [name, r.dir])) }
  }

  /** Runs `work` with `name` marked busy (set before its first await, so no collection pass comes between). */
  private async whileBusy<T> (name: string, work: () => Promise<T>): Promise<T> {
    this.busy.set(name, (this.busy.get(name) ?? 0) + 1)
    try {
      return await work()
    } finally {
      const left = this.busy.get(name)! - 1
      if (left === 0) this.busy.delete(name)
      else this.busy.set(name, left)
    }
  }

  /** Starts `bundle` as the instance of `name` (a verified bundle the plan names). */
  async start (name: string, bundle: SignedBundle): Promise<void> {
    await this.whileBusy(name, async () => { await this.startNow(name, bundle) })
  }

  private async startNow (name: string, bundle: SignedBundle): Promise<void> {
    if (this.running.has(name)) await this.stopNow(name)
    const { manifest } = bundle
    const base = join(this.root, name)
    const dir = join(base, bundle.digest.slice(0, 16))
    const logDir = join(base, 'logs')
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(logDir, { recursive: true })
    await unpackBundle(bundle, dir)
    const entry: Running = { name, digest: bundle.digest, version: manifest.version, kind: manifest.kind, startedAt: Date.now(), dir, logDir }
    this.running.set(name, entry)
    if (manifest.kind === 'job') {
      const file = bundle.files.find(f => f.path === manifest.wasm)
      if (file === undefined) throw new Error(`the bundle has no ${manifest.wasm}`)
      entry.jobRunning = runWasiJob({ instanceId: `${name}-${bundle.digest.slice(0, 12)}-${this.owner}`, wasm: file.bytes, args: manifest.args ?? [], env: manifest.env ?? {}, dir, logDir, timeoutMs: JOB_TIMEOUT_MS, memoryMb: manifest.resources.memoryMb })
        .then((result) => {
          entry.job = result
          writeFileSync(join(logDir, 'result.json'), JSON.stringify({ digest: bundle.digest, ...result }))
          this.log.info({ app: name, exitCode: result.exitCode, timedOut: result.timedOut }, 'job finished')
        })
        .catch((err: Error) => {
          entry.job = { exitCode: 255, stdout: '', stderr: err.message, durationMs: Date.now() - entry.startedAt, timedOut: false }
          this.log.warn({ app: name, err: err.message }, 'job could not run')
        })
        .finally(() => { this.onChange(name) })
      this.onChange(name)
      return
    }
    const entrypoint = entrypointFor(manifest, this.arch)
    if (entrypoint === undefined) throw new Error(`the bundle has nothing to run on ${this.arch}`)
    entry.port = await freePort()
    entry.service = new ServiceInstance({
      instanceId: `${name}-${bundle.digest.slice(0, 12)}-${this.owner}`,
      dir,
      command: entrypoint.command,
      args: entrypoint.args,
      env: manifest.env ?? {},
      port: entry.port,
      resources: manifest.resources,
      ...(manifest.health === undefined ? {} : { health: manifest.health }),
      logDir
    }, { log: (msg, fields) => { this.log.debug({ app: name, ...fields }, msg) } })
    entry.service.onChange(() => { this.onChange(name) })
    entry.service.start()
    this.log.info({ app: name, digest: bundle.digest, port: entry.port }, 'instance started')
    this.onChange(name)
  }

  /** Stops every process of `name` where it stands (its lease may lapse); thaw() lets it go on. */
  freeze (name: string): void {
    this.running.get(name)?.service?.freeze()
  }

  thaw (name: string): void {
    this.running.get(name)?.service?.thaw()
  }

  async stop (name: string): Promise<void> {
    await this.whileBusy(name, async () => { await this.stopNow(name) })
  }

  private async stopNow (name: string): Promise<void> {
    const entry = this.running.get(name)
    if (entry === undefined) return
    this.running.delete(name)
    await entry.service?.stop()
    // the grace period before its directories are collected starts now
    const now = new Date()
    for (const dir of [entry.dir, join(this.root, name)]) {
      try { utimesSync(dir, now, now) } catch {}
    }
    this.log.info({ app: name, digest: entry.digest }, 'instance stopped')
    this.onChange(name)
  }

  async stopAll (): Promise<void> {
    await Promise.all(this.names().map(async n => { await this.stop(n) }))
  }

  view (name: string): LocalInstanceView | undefined {
    const r = this.running.get(name)
    if (r === undefined) return undefined
    const status = r.service?.status()
    return {
      name,
      digest: r.digest,
      version: r.version,
      kind: r.kind,
      health: this.health(name)!,
      state: status?.state ?? (r.job === undefined ? 'running' : 'done'),
      ...(r.port === undefined ? {} : { port: r.port }),
      ...(status?.pid === undefined ? {} : { pid: status.pid }),
      restarts: status?.restarts ?? 0,
      startedAt: r.startedAt,
      ...(status?.lastExit === undefined ? {} : { lastExit: status.lastExit }),
      ...(r.job === undefined ? {} : { job: r.job }),
      limits: status?.limits ?? this.limits
    }
  }

  views (): LocalInstanceView[] {
    return this.names().map(n => this.view(n)!).filter(v => v !== undefined)
  }
}
