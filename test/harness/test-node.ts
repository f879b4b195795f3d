// One real `mycelium` daemon process with its own home, driven the way an operator would:
// through the CLI and the admin API.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, readFileSync, existsSync, openSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { waitFor } from './wait.ts'
import { ApiClient } from '../../node/api/index.ts'
import { Home } from '../../node/home/index.ts'
import type { LabHost } from './netns.ts'

export const REPO_ROOT = resolve(import.meta.dirname, '../..')
export const SOURCE_CLI = join(REPO_ROOT, 'bin/mycelium.js')
/**
 * The `mycelium` the harness runs: the bundle of `npm run build:node` (what install.sh
 * installs), which the suite's global setup builds from these sources; the sources
 * themselves with MYCELIUM_TEST_SOURCES=1.
 */
export const CLI = process.env.MYCELIUM_TEST_SOURCES === '1' ? SOURCE_CLI : join(REPO_ROOT, 'dist/mycelium.mjs')
/** Node 24 from the `node` devDependency: the system Node may be too old for libp2p. */
export const NODE = existsSync(join(REPO_ROOT, 'node_modules/.bin/node')) ? join(REPO_ROOT, 'node_modules/.bin/node') : process.execPath

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

export interface TestNodeOptions {
  name: string
  home?: string
  /** extra arguments for `mycelium start` */
  startArgs?: string[]
  env?: Record<string, string>
  host?: LabHost
  /** the CLI entry to run (default CLI: the bundle; benchmarks compare it with the sources) */
  cliPath?: string
}

export class TestNode {
  readonly name: string
  readonly home: string
  readonly options: TestNodeOptions
  process?: ChildProcess
  peerId = ''
  exited?: Promise<number | null>

  constructor (options: TestNodeOptions) {
    this.options = options
    this.name = options.name
    this.home = options.home ?? mkdtempSync(join(tmpdir(), `myc-${options.name}-`))
  }

  private wrap (argv: string[]): [string, string[]] {
    return this.options.host === undefined ? [NODE, argv] : ['ip', ['netns', 'exec', this.options.host.namespace, NODE, ...argv]]
  }

  listenAddrs (): string[] {
    const ip = this.options.host?.address ?? '127.0.0.1'
    return ['--listen', `/ip4/${ip}/tcp/0`, '--listen', `/ip4/${ip}/tcp/0/ws`]
  }

  /** Runs a CLI command against this node's home. */
  async cli (args: string[], options: { timeoutMs?: number, env?: Record<string, string> } = {}): Promise<CliResult> {
    const [cmd, argv] = this.wrap([this.options.cliPath ?? CLI, ...args, '--home', this.home])
    return await new Promise((resolve) => {
      execFile(cmd, argv, { env: { ...process.env, ...this.options.env, ...options.env }, timeout: options.timeoutMs ?? 60_000, encoding: 'utf8' }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
      })
    })
  }

  async cliJson<T = any> (args: string[]): Promise<T> {
    const r = await this.cli([...args, '--json'])
    if (r.code !== 0) throw new Error(`mycelium ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`)
    return JSON.parse(r.stdout) as T
  }

  /** Starts the daemon and waits until its admin API answers. */
  async start (extraArgs: string[] = []): Promise<void> {
    const logFile = join(this.home, 'daemon.log')
    const fd = openSync(logFile, 'a')
    const [cmd, argv] = this.wrap([this.options.cliPath ?? CLI, 'start', '--home', this.home, ...this.listenAddrs(), '--api-port', '0', ...(this.options.startArgs ?? []), ...extraArgs])
    const child = spawn(cmd, argv, { env: { ...process.env, MYCELIUM_LOG_LEVEL: 'debug', ...this.options.env }, stdio: ['ignore', fd, fd] })
    closeSync(fd)
    this.process = child
    this.exited = new Promise(resolve => child.once('exit', (code) => resolve(code)))
    // the admin API's unix socket reaches the daemon from here even inside a namespace: no
    // CLI process per poll (a CLI process costs about a second of CPU on a busy machine)
    const answered = waitFor(async () => await this.api('/status'), { timeoutMs: 60_000, intervalMs: 200, what: `daemon ${this.name} to answer` })
      .catch((err) => { throw new Error(`${(err as Error).message}\n${this.log().slice(-3000)}`) })
    const died = this.exited.then((code) => { throw new Error(`daemon ${this.name} exited with ${code}: ${this.log().slice(-2000)}`) })
    const status = await Promise.race([answered, died])
    answered.catch(() => {})
    this.peerId = status.peerId
  }

  log (): string {
    const file = join(this.home, 'daemon.log')
    return existsSync(file) ? readFileSync(file, 'utf8') : ''
  }

  /** Reads the daemon's admin API in this process (what the CLI prints with --json). */
  async api<T = any> (path: string, method = 'GET', body?: unknown): Promise<T> {
    return await ApiClient.forHome(new Home(this.home)).request<T>(method, path, body)
  }

  async status (): Promise<any> {
    return await this.api('/status')
  }

  async peers (): Promise<Array<{ peerId: string, addrs: string[], role: string }>> {
    return await this.api('/peers')
  }

  running (): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null
  }

  /** SIGKILL: no shutdown code runs, as when power is cut. */
  async kill (): Promise<void> {
    if (!this.running()) return
    this.process!.kill('SIGKILL')
    await this.exited
  }

  /** Graceful stop through the CLI; returns the daemon's exit code. */
  async stop (): Promise<number | null | undefined> {
    if (!this.running()) return this.process?.exitCode
    const r = await this.cli(['stop'])
    if (r.code !== 0) this.process!.kill('SIGTERM')
    return await this.exited
  }

  async destroy (): Promise<void> {
    if (this.running()) {
      this.process!.kill('SIGKILL')
      await this.exited
    }
    if (process.env.MYCELIUM_KEEP_HOMES !== "1") rmSync(this.home, { recursive: true, force: true })
  }
}
