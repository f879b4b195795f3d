// The runner against real processes: apps written to a temporary bundle directory and run
// with this Node (or sh), supervised, limited, logged and stopped as a node would run them.
import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { ServiceInstance, detectLimits, detectNamespaces, probeNamespaces, freePort, readLog, followLog, type ServiceSpec, type InstanceState, type ServiceInstanceOptions, type FollowCounters } from '../../workloads/runner/index.ts'
import { RotatingLog } from '../../workloads/runner/rotating-log.ts'

let work: string
let bundle: string
let logDir: string
const instances: ServiceInstance[] = []
const strays: number[] = []
let serial = 0

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'myc-runner-'))
  bundle = join(work, 'bundle')
  logDir = join(work, 'logs')
  mkdirSync(bundle)
})

afterEach(async () => {
  await Promise.all(instances.splice(0).map(async i => await i.stop()))
  for (const pid of strays.splice(0)) {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
  rmSync(work, { recursive: true, force: true })
})

/** An app in the bundle, run by this Node. */
function app (name: string, source: string): string {
  writeFileSync(join(bundle, name), source)
  return name
}

async function service (over: Partial<ServiceSpec> = {}, options: ServiceInstanceOptions = {}): Promise<ServiceInstance> {
  const spec: ServiceSpec = {
    instanceId: `runner-test-${process.pid}-${serial++}`,
    dir: bundle,
    command: process.execPath,
    args: [],
    env: {},
    port: await freePort(),
    resources: { cpuMillis: 500, memoryMb: 256 },
    logDir,
    ...over
  }
  const instance = new ServiceInstance(spec, options)
  instances.push(instance)
  return instance
}

async function until (condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

/** A zombie (this machine's init does not reap orphans) is as good as gone. */
function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0])
  } catch {
    return false
  }
}

function procStat (pid: number): { state: string, ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state, ppid: Number(ppid) }
  } catch {
    return undefined
  }
}

/** Every live process below `pid`, as this machine sees them (host pids). */
function descendants (pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    const stat = /^\d+$/.test(entry) ? procStat(Number(entry)) : undefined
    if (stat !== undefined) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), Number(entry)])
  }
  const found: number[] = []
  const visit = (p: number): void => { for (const c of children.get(p) ?? []) { found.push(c); visit(c) } }
  visit(pid)
  return found.filter(alive)
}

/** A process's pid in each PID namespace it is in, the host's first. */
function nsPids (pid: number): number[] {
  return /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1].split(/\s+/).map(Number)
}

/** The host pid of the instance's process that sees itself as `pidInside`. */
function hostPidOf (instance: ServiceInstance, pidInside: number): number {
  const pid = descendants(instance.status().pid!).find(p => nsPids(p).at(-1) === pidInside && nsPids(p).length > 1)
  if (pid === undefined) throw new Error(`no process of the instance is ${pidInside} inside its namespace`)
  return pid
}

const SERVER = `
import { createServer } from 'node:http'
const healthStatus = Number(process.argv[2] ?? 200)
createServer((req, res) => {
  if (req.url === '/health') { res.statusCode = healthStatus; res.end(); return }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ port: process.env.PORT, home: process.env.HOME, greeting: process.env.GREETING, vitest: process.env.VITEST ?? null, names: Object.keys(process.env).sort() }))
}).listen(Number(process.env.PORT), '127.0.0.1')
`

describe('a service instance on this machine', () => {
  it('is given its PORT and a minimal environment, and is healthy once its health check answers 2xx', async () => {
    const instance = await service({ args: [app('server.mjs', SERVER)], env: { GREETING: 'hi' }, health: { http: '/health' } })
    const seen: InstanceState[] = []
    instance.onChange(s => seen.push(s.state))
    instance.start()
    await until(() => instance.status().state === 'healthy', 8_000, 'healthy')
    const { port } = instance.status()
    const answer = await (await fetch(`http://127.0.0.1:${port}/`)).json()
    // nothing else either: not the daemon's variables, nor those of the shells it starts through
    expect(answer).toEqual({ port: String(port), home: bundle, greeting: 'hi', vitest: null, names: ['GREETING', 'HOME', 'LANG', 'PATH', 'PORT'] })
    expect(seen).toEqual(['starting', 'healthy'])
    expect(instance.status().pid).toBeGreaterThan(0)
  })

  it('is unhealthy while its health check answers 500, and keeps running', async () => {
    const instance = await service({ args: [app('server.mjs', SERVER), '500'], health: { http: '/health' } })
    instance.start()
    await until(() => instance.status().state === 'unhealthy', 8_000, 'unhealthy')
    expect(instance.status().restarts).toBe(0)
    expect(alive(instance.status().pid!)).toBe(true)
  })

  it('without a health check, is healthy once it has run for a second', async () => {
    const instance = await service({ command: 'sleep', args: ['30'] })
    instance.start()
    const started = Date.now()
    await until(() => instance.status().state === 'healthy', 5_000, 'healthy')
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
  })

  it('runs a command given relative to its bundle directory', async () => {
    mkdirSync(join(bundle, 'bin'))
    writeFileSync(join(bundle, 'bin', 'run.sh'), '#!/bin/sh\necho "listening on $PORT in $(pwd)"\nexec sleep 30\n')
    chmodSync(join(bundle, 'bin', 'run.sh'), 0o755)
    const instance = await service({ command: 'bin/run.sh' })
    instance.start()
    await until(async () => (await readLog(logDir, 'stdout')).includes('listening'), 5_000, 'output')
    expect(await readLog(logDir, 'stdout')).toBe(`listening on ${instance.status().port} in ${bundle}\n`)
  })

  it('restarts a service that exits at once, with a growing back-off, counting the restarts', async () => {
    const instance = await service({ command: '/bin/sh', args: ['-c', 'exit 3'], backoff: { initialMs: 40, maxMs: 320 } })
    const backoffAt: number[] = []
    const gaps: number[] = []
    instance.onChange(s => {
      if (s.state === 'backoff') backoffAt.push(Date.now())
      if (s.state === 'starting' && backoffAt.length > 0) gaps.push(Date.now() - backoffAt[backoffAt.length - 1])
    })
    instance.start()
    await until(() => instance.status().restarts >= 2, 5_000, 'two restarts')
    const early = instance.status().restarts
    await until(() => instance.status().restarts >= 6, 8_000, 'six restarts')
    expect(instance.status().restarts).toBeGreaterThan(early)
    expect(instance.status().lastExit).toMatchObject({ code: 3, signal: null })
    const expected = [40, 80, 160, 320, 320, 320]
    gaps.slice(0, 6).forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(expected[i] - 2))
    expect(gaps[0]).toBeLessThan(320)
  })

  it('goes to back-off with the exit recorded when its command does not exist, without throwing', async () => {
    const instance = await service({ command: 'no-such-program-in-this-bundle', backoff: { initialMs: 50, maxMs: 100 } })
    expect(() => instance.start()).not.toThrow()
    await until(() => instance.status().state === 'backoff', 3_000, 'backoff')
    expect(instance.status().lastExit).toMatchObject({ code: 127, signal: null })
    expect(instance.status().pid).toBeUndefined()
    await until(() => instance.status().restarts >= 2, 3_000, 'restarts')
  })

  it('stop() kills a service that ignores SIGTERM, after a 5 s grace', async () => {
    const instance = await service({ args: [app('stubborn.mjs', "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready'); setInterval(() => {}, 1000)")] })
    instance.start()
    await until(async () => (await readLog(logDir, 'stdout')).includes('ready'), 5_000, 'ready')
    const pid = instance.status().pid!
    const asked = Date.now()
    await instance.stop()
    const took = Date.now() - asked
    expect(took).toBeGreaterThanOrEqual(4_900)
    expect(took).toBeLessThan(9_000)
    expect(alive(pid)).toBe(false)
    expect(await readLog(logDir, 'stdout')).toContain('ignoring SIGTERM')
    expect(instance.status()).toMatchObject({ state: 'stopped', lastExit: { signal: 'SIGKILL' } })
  }, 15_000)

  const FORKER = `
import { spawn } from 'node:child_process'
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', detached: process.argv[3] === 'own-session' })
console.log('grandchild ' + child.pid)
if (process.argv[2] === 'die') setTimeout(() => process.exit(1), 1000)
else setInterval(() => {}, 1000)
`
  /** the grandchild's host pid: the one it prints is its pid inside the instance's namespace */
  async function grandchildOf (instance: ServiceInstance): Promise<number> {
    await until(async () => /grandchild \d+/.test(await readLog(logDir, 'stdout')), 5_000, 'the grandchild')
    const pid = hostPidOf(instance, Number(/grandchild (\d+)/.exec(await readLog(logDir, 'stdout'))![1]))
    strays.push(pid)
    return pid
  }

  it('stop() also ends a grandchild the service forked (its process group)', async () => {
    const instance = await service({ args: [app('forker.mjs', FORKER)] })
    instance.start()
    const grandchild = await grandchildOf(instance)
    expect(alive(grandchild)).toBe(true)
    await instance.stop()
    expect(alive(grandchild)).toBe(false)
  })

  it('stop() also ends a grandchild that left for a session of its own, by the end of its PID namespace, without cgroups', async () => {
    const empty = join(work, 'no-cgroups')
    mkdirSync(empty)
    const instance = await service({ args: [app('forker.mjs', FORKER), 'live', 'own-session'] }, { cgroupRoot: empty })
    instance.start()
    const grandchild = await grandchildOf(instance)
    const all = [instance.status().pid!, ...descendants(instance.status().pid!)]
    expect(all).toContain(grandchild)
    await instance.stop()
    expect(all.filter(alive)).toEqual([])
  })

  it('when a service dies, what it forked goes with it before the restart', async () => {
    const instance = await service({ args: [app('forker.mjs', FORKER), 'die'], backoff: { initialMs: 10_000, maxMs: 10_000 } })
    instance.start()
    const grandchild = await grandchildOf(instance)
    await until(() => instance.status().state === 'backoff', 5_000, 'backoff')
    await until(() => !alive(grandchild), 2_000, 'the grandchild to be killed')
  })

  it('keeps stdout and stderr in logs rotated at logMaxBytes, at most 3 old files, and reads back the newest', async () => {
    // 100 lines of 100 bytes: five files' worth, whatever chunks the pipe delivers them in
    const writer = "for (let i = 0; i < 100; i++) console.log(`line ${i} `.padEnd(99, '.')); console.error('an error line'); setInterval(() => {}, 1000)"
    const instance = await service({ args: [app('chatty.mjs', writer)], logMaxBytes: 2048 })
    instance.start()
    await until(async () => (await readLog(logDir, 'stdout')).includes('line 99 '), 5_000, 'the last line')
    expect(readdirSync(logDir).filter(f => f.startsWith('stdout')).sort()).toEqual(['stdout.log', 'stdout.log.1', 'stdout.log.2', 'stdout.log.3'])
    for (const f of readdirSync(logDir)) expect(statSync(join(logDir, f)).size).toBeLessThanOrEqual(2048)
    const text = await readLog(logDir, 'stdout')
    // the oldest kept file may begin in the middle of a line
    const lines = text.split('\n').slice(1).filter(l => l.length > 0).map(l => Number(/^line (\d+) /.exec(l)?.[1]))
    expect(lines[lines.length - 1]).toBe(99)
    expect(lines.length).toBeGreaterThanOrEqual(30)
    expect(lines).not.toContain(0) // rotated away
    lines.slice(1).forEach((n, i) => expect(n).toBe(lines[i] + 1))
    expect((await readLog(logDir, 'stdout', { tailBytes: 150 })).endsWith(`${'line 99 '.padEnd(99, '.')}\n`)).toBe(true)
    expect(await readLog(logDir, 'stderr')).toBe('an error line\n')
  })

  it('followLog follows the newest output across rotations, without gaps', async () => {
    const ticker = "let n = 0; setInterval(() => console.log(`tick ${n++}`), 15)"
    const instance = await service({ args: [app('ticker.mjs', ticker)], logMaxBytes: 100 })
    instance.start()
    await until(async () => (await readLog(logDir, 'stdout')).includes('tick 3'), 5_000, 'ticks')
    const abort = new AbortController()
    let followed = ''
    const following = followLog(logDir, 'stdout', chunk => { followed += chunk }, abort.signal)
    await until(() => followed.split('\n').length > 40, 8_000, 'forty followed lines')
    abort.abort()
    await following
    const ticks = followed.split('\n').filter(l => l.length > 0).map(l => Number(/^tick (\d+)$/.exec(l)?.[1]))
    ticks.slice(1).forEach((n, i) => expect(n).toBe(ticks[i] + 1))
    expect(readdirSync(logDir).filter(f => f.startsWith('stdout')).length).toBe(4)
  })

  it('followLog hands on the tail, then wakes on each write and rotation (change events), and looks at nothing while idle', async () => {
    mkdirSync(logDir)
    const out = new RotatingLog(logDir, 'stdout', 200, (err) => { throw err })
    out.write(Buffer.from('before 1\nbefore 2\n'))
    const counters: FollowCounters = { checks: 0 }
    const abort = new AbortController()
    let followed = ''
    const following = followLog(logDir, 'stdout', chunk => { followed += chunk }, abort.signal, { tailBytes: 1024, counters })
    await until(() => followed === 'before 1\nbefore 2\n', 2_000, 'the tail')
    expect(counters.mode).toBe('watch')
    // a poll every 100 ms would have looked ten times
    const idle = counters.checks
    await new Promise(resolve => setTimeout(resolve, 1000))
    expect(counters.checks).toBe(idle)
    const lines = Array.from({ length: 60 }, (_, i) => `line ${i}\n`)
    for (const line of lines) {
      out.write(Buffer.from(line))
      await until(() => followed.endsWith(line), 2_000, line.trim())
    }
    // 60 lines of 7-8 bytes in files of 200: rotated twice on the way
    expect(readdirSync(logDir).sort()).toEqual(['stdout.log', 'stdout.log.1', 'stdout.log.2'])
    expect(followed).toBe(`before 1\nbefore 2\n${lines.join('')}`)
    abort.abort()
    await following
    out.close()
  })

  it('followLog skips no file when a burst rotates the log again while the follower opens the rotated files', async () => {
    // a writer in the same process (as the daemon writes its instances' logs) rotating every
    // sixteen turns of the event loop: the files a rotation leaves are all held before any is
    // read, else a later rotation moves a name on and a whole file is skipped
    mkdirSync(logDir)
    const out = new RotatingLog(logDir, 'stdout', 1024 * 1024, (err) => { throw err })
    out.write(Buffer.from('y'.repeat(1000 * 1024)))
    const abort = new AbortController()
    let followed = ''
    const following = followLog(logDir, 'stdout', chunk => { followed += chunk }, abort.signal)
    await new Promise(resolve => setTimeout(resolve, 200))
    const burst = Buffer.from(Array.from({ length: 2500 }, (_, i) => `burst ${i} ${'x'.repeat(1000)}\n`).join(''))
    for (let at = 0; at < burst.length; at += 65536) {
      out.write(burst.subarray(at, at + 65536))
      await new Promise(resolve => setImmediate(resolve))
    }
    await until(() => followed.includes('burst 2499 '), 10_000, 'the end of the burst')
    abort.abort()
    await following
    out.close()
    const seen = followed.split('\n').filter(l => l.startsWith('burst ')).map(l => Number(l.split(' ')[1]))
    expect(seen).toEqual(Array.from({ length: 2500 }, (_, i) => i))
  })

  it('followLog reads no further while its consumer holds it back, and with `until` reads what is there, then returns', async () => {
    mkdirSync(logDir)
    const out = new RotatingLog(logDir, 'stdout', 1024, (err) => { throw err })
    const abort = new AbortController()
    const until_ = new AbortController()
    const chunks: string[] = []
    let release: (() => void) | undefined
    const following = followLog(logDir, 'stdout', async (chunk) => {
      chunks.push(chunk)
      if (chunk.includes('hold')) await new Promise<void>(resolve => { release = resolve })
    }, abort.signal, { until: until_.signal })
    await new Promise(resolve => setTimeout(resolve, 100))
    out.write(Buffer.from('hold\n'))
    await until(() => release !== undefined, 2_000, 'the consumer holding')
    out.write(Buffer.from('after 1\n'))
    out.write(Buffer.from('after 2\n'))
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(chunks).toEqual(['hold\n'])
    // the instance stops: what the file holds is read, then the follow ends on its own
    until_.abort()
    release!()
    await following
    expect(chunks.join('')).toBe('hold\nafter 1\nafter 2\n')
    out.close()
  })

  it('followLog polls where there is nothing to watch yet (the log directory not made), and reads the file once it comes', async () => {
    const counters: FollowCounters = { checks: 0 }
    const abort = new AbortController()
    let followed = ''
    const following = followLog(logDir, 'stdout', chunk => { followed += chunk }, abort.signal, { counters })
    await until(() => counters.checks > 0, 2_000, 'a first look')
    expect(counters.mode).toBe('poll')
    mkdirSync(logDir)
    const out = new RotatingLog(logDir, 'stdout', 1024, (err) => { throw err })
    out.write(Buffer.from('late\n'))
    await until(() => followed === 'late\n', 2_000, 'the late line')
    abort.abort()
    await following
    out.close()
  })
})

describe('limits on this machine', () => {
  it('enforces the memory limit where the host allows it: a service allocating far beyond memoryMb is killed', async () => {
    const limits = detectLimits()
    if (!limits.memory) {
      // a host without writable cgroups says why instead
      expect(limits.reason).toMatch(/memory|cgroup/)
      return
    }
    const hog = "const held = []; const grow = () => { held.push(Buffer.alloc(32 << 20, 1)); if (held.length < 40) setTimeout(grow, 10); else console.log('survived 1.25 GiB') }; grow()"
    const instance = await service({ args: [app('hog.mjs', hog)], resources: { cpuMillis: 1000, memoryMb: 128 }, backoff: { initialMs: 10_000, maxMs: 10_000 } })
    instance.start()
    expect(instance.status().limits).toMatchObject({ cgroup: limits.cgroup, memory: true, session: true })
    const pid = instance.status().pid!
    const membership = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    const id = instance.status().instanceId
    expect(membership).toContain(`mycelium/${id}`)
    await until(() => instance.status().lastExit !== undefined, 10_000, 'the hog to exit')
    expect(instance.status().lastExit).toMatchObject({ code: null, signal: 'SIGKILL' })
    expect(await readLog(logDir, 'stdout')).not.toContain('survived')
    await instance.stop()
    const memoryLine = limits.cgroup === 'v2' ? /^0::(.*)$/m : /^\d+:[^:]*\bmemory\b[^:]*:(.*)$/m
    const cgroupPath = memoryLine.exec(membership)![1]
    expect(cgroupPath).toContain(`mycelium/${id}`)
    const hierarchy = limits.cgroup === 'v2' ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory'
    expect(existsSync(join(hierarchy, cgroupPath))).toBe(false)
  })

  it('reports a host without cgroups, with the reason, and still runs the instance', async () => {
    const empty = join(work, 'no-cgroups')
    mkdirSync(empty)
    const limits = detectLimits({ cgroupRoot: empty })
    expect(limits).toMatchObject({ cgroup: 'none', memory: false, cpu: false, pids: false, session: true })
    expect(limits.reason).toContain(empty)
    const instance = await service({ command: 'sleep', args: ['30'] }, { cgroupRoot: empty })
    instance.start()
    await until(() => instance.status().state === 'healthy', 5_000, 'healthy')
    expect(instance.status().limits.cgroup).toBe('none')
  })

  function fakeV2 (): string {
    const root = join(work, 'cgroup2')
    mkdirSync(root)
    writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n')
    writeFileSync(join(root, 'cgroup.subtree_control'), '')
    return root
  }

  it('on a cgroup v2 host, writes memory.max, cpu.max and pids.max and admits the process', async () => {
    const root = fakeV2()
    expect(detectLimits({ cgroupRoot: root })).toMatchObject({ cgroup: 'v2', memory: true, cpu: true, pids: true })
    const instance = await service({ command: 'sleep', args: ['30'], resources: { cpuMillis: 250, memoryMb: 64 } }, { cgroupRoot: root })
    instance.start()
    const dir = join(root, 'mycelium', instance.status().instanceId)
    const read = (file: string): string => readFileSync(join(dir, file), 'utf8').trim()
    expect(read('memory.max')).toBe(String(64 * 1024 * 1024))
    expect(read('cpu.max')).toBe('25000 100000')
    expect(read('pids.max')).toBe('512')
    expect(read('cgroup.procs')).toBe(String(instance.status().pid))
    expect(instance.status().limits).toMatchObject({ cgroup: 'v2', memory: true, cpu: true, pids: true })
  })

  it('reports a limit it could not write, with the reason, and still starts the instance', async () => {
    const root = fakeV2()
    const id = `runner-test-${process.pid}-unwritable`
    mkdirSync(join(root, 'mycelium', id, 'memory.max'), { recursive: true }) // a write to it fails
    const instance = await service({ instanceId: id, command: 'sleep', args: ['30'] }, { cgroupRoot: root })
    instance.start()
    await until(() => instance.status().state === 'healthy', 5_000, 'healthy')
    const { limits } = instance.status()
    expect(limits).toMatchObject({ cgroup: 'v2', memory: false, cpu: true, pids: true })
    expect(limits.reason).toContain('memory.max')
  })

  it('on a cgroup v1 host, says which controllers it found', () => {
    const root = join(work, 'cgroup1')
    mkdirSync(join(root, 'memory'), { recursive: true })
    mkdirSync(join(root, 'cpu'), { recursive: true })
    for (const file of ['memory/memory.limit_in_bytes', 'memory/cgroup.procs', 'cpu/cpu.cfs_quota_us', 'cpu/cgroup.procs']) writeFileSync(join(root, file), '')
    const limits = detectLimits({ cgroupRoot: root })
    expect(limits).toMatchObject({ cgroup: 'v1', memory: true, cpu: true, pids: false })
    expect(limits.reason).toContain('pids')
  })

  it('refuses an instance id that could escape its cgroup or log names', async () => {
    await expect(service({ instanceId: '../escape' })).rejects.toThrow(/instanceId/)
  })
})

describe('namespaces on this machine', () => {
  // what the app sees of itself and its machine; it renames its host only in a UTS namespace of its own
  const WHOAMI = `
import { createServer } from 'node:http'
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
if (readlinkSync('/proc/self/ns/uts') !== process.env.HOST_UTS) writeFileSync('/proc/sys/kernel/hostname', 'myc-inside')
const facts = {
  pid: process.pid,
  ppid: process.ppid,
  nspid: /^NSpid:\\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))[1],
  processes: readdirSync('/proc').filter(e => /^\\d+$/.test(e)),
  hostname: hostname()
}
createServer((req, res) => res.end(JSON.stringify(facts))).listen(Number(process.env.PORT), '127.0.0.1')
`
  const HOST_UTS = readlinkSync('/proc/self/ns/uts')

  async function factsOf (instance: ServiceInstance): Promise<{ pid: number, ppid: number, nspid: string, processes: string[], hostname: string }> {
    // healthy: its health check reached it on 127.0.0.1 of the host
    await until(() => instance.status().state === 'healthy', 8_000, 'healthy')
    return await (await fetch(`http://127.0.0.1:${instance.status().port}/`)).json()
  }

  it('runs an instance in PID, mount, IPC and UTS namespaces of its own, on the host\'s network', async () => {
    expect(detectNamespaces()).toBe(detectNamespaces()) // found out once
    const hostName = hostname()
    const instance = await service({ args: [app('whoami.mjs', WHOAMI)], env: { HOST_UTS }, health: { http: '/' } })
    const { limits } = instance.status()
    expect(limits.namespaces, limits.reason).toEqual(expect.arrayContaining(['pid', 'mount', 'ipc', 'uts']))
    expect(limits.namespaces).not.toContain('net')
    instance.start()
    const facts = await factsOf(instance)
    // the child of its namespace's init, alone there with it, /proc being the namespace's own
    expect(facts).toEqual({ pid: 2, ppid: 1, nspid: '2', processes: ['1', '2'], hostname: 'myc-inside' })
    expect(hostname()).toBe(hostName)
    // the runner sees host pids: unshare in the host's namespace, the app below it
    const runnerPid = instance.status().pid!
    expect(nsPids(runnerPid)).toEqual([runnerPid])
    const appPid = hostPidOf(instance, 2)
    expect(nsPids(appPid)).toEqual([appPid, 2])
    const ns = (pid: number | 'self', kind: string): string => readlinkSync(`/proc/${pid}/ns/${kind}`)
    for (const kind of ['pid', 'mnt', 'ipc', 'uts']) expect(ns(appPid, kind)).not.toBe(ns('self', kind))
    expect(ns(appPid, 'net')).toBe(ns('self', 'net'))
    // admitted to its cgroup before unshare forked anything
    if (limits.cgroup !== 'none') expect(readFileSync(`/proc/${appPid}/cgroup`, 'utf8')).toContain(`mycelium/${instance.status().instanceId}`)
    const processes = [runnerPid, ...descendants(runnerPid)]
    expect(processes.length).toBe(4) // unshare, the lifeline's watcher (lifeline.ts), the namespace's init, the app
    await instance.stop()
    expect(processes.filter(alive)).toEqual([])
    expect(instance.status().lastExit).toMatchObject({ code: null, signal: 'SIGTERM' })
  })

  it('says how the app ended, through the namespace\'s init: the signal that killed it, 126 for a file it cannot run', async () => {
    writeFileSync(join(bundle, 'not-runnable.sh'), '#!/bin/sh\nexit 0\n')
    chmodSync(join(bundle, 'not-runnable.sh'), 0o644)
    const slow = { initialMs: 10_000, maxMs: 10_000 }
    const killed = await service({ command: '/bin/sh', args: ['-c', 'kill -USR1 $$'], backoff: slow })
    const unrunnable = await service({ command: './not-runnable.sh', backoff: slow })
    for (const instance of [killed, unrunnable]) instance.start()
    await until(() => killed.status().lastExit !== undefined && unrunnable.status().lastExit !== undefined, 5_000, 'both to end')
    expect(killed.status().lastExit).toMatchObject({ code: null, signal: 'SIGUSR1' })
    expect(unrunnable.status().lastExit).toMatchObject({ code: 126, signal: null })
  })

  it('on a host where namespaces cannot be made, says why and runs the instance as before', async () => {
    const refusing = join(work, 'unshare')
    writeFileSync(refusing, '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n')
    chmodSync(refusing, 0o755)
    const detect = (): ReturnType<typeof probeNamespaces> => probeNamespaces(refusing)
    expect(detectLimits({ detectNamespaces: detect })).toMatchObject({ namespaces: [], reason: expect.stringContaining('Operation not permitted') })
    const instance = await service({ args: [app('whoami.mjs', WHOAMI)], env: { HOST_UTS }, health: { http: '/' } }, { detectNamespaces: detect })
    instance.start()
    const facts = await factsOf(instance)
    expect(facts.pid).toBe(instance.status().pid)
    expect(facts.processes.length).toBeGreaterThan(2)
    expect(facts.hostname).toBe(hostname())
    expect(instance.status().limits).toMatchObject({ namespaces: [], reason: expect.stringContaining(`${refusing} --fork`) })

    const hanging = join(work, 'hanging-unshare')
    writeFileSync(hanging, '#!/bin/sh\nexec sleep 10\n')
    chmodSync(hanging, 0o755)
    const asked = Date.now()
    expect(probeNamespaces(hanging, 200)).toEqual({ reason: expect.stringContaining('did not finish within 200 ms') })
    expect(Date.now() - asked).toBeLessThan(2_000)

    const off = await service({ command: 'sleep', args: ['30'] }, { namespaces: false })
    off.start()
    expect(off.status().limits).toMatchObject({ namespaces: [], reason: expect.stringContaining('turned off') })
    expect(nsPids(off.status().pid!)).toEqual([off.status().pid])
  })
})

describe('freezing (the fence of a single-instance application)', () => {
  function procState (pid: number): string | undefined {
    return procStat(pid)?.state
  }

  it('stops every process where it stands, holds back restarts, and lets them go on when thawed', async () => {
    const ticker = app('ticker.mjs', 'let n = 0; setInterval(() => { process.stdout.write(`${n++}\\n`) }, 20)')
    const instance = await service({ args: [ticker] })
    instance.start()
    await until(async () => (await readLog(logDir, 'stdout')).split('\n').length > 5, 5000, 'ticks')
    const pid = instance.status().pid!
    // the app itself is the namespace's PID 2, below unshare and the namespace's init
    const processes = [pid, ...descendants(pid)]
    expect(processes).toContain(hostPidOf(instance, 2))
    instance.freeze()
    await until(() => processes.every(p => procState(p) === 'T'), 2000, 'every process stopped')
    // what the app wrote just before it stopped may still be in the pipe
    await new Promise(resolve => setTimeout(resolve, 200))
    const frozenAt = (await readLog(logDir, 'stdout')).length
    await new Promise(resolve => setTimeout(resolve, 400))
    expect((await readLog(logDir, 'stdout')).length).toBe(frozenAt)
    instance.thaw()
    await until(async () => (await readLog(logDir, 'stdout')).length > frozenAt, 3000, 'ticks after thawing')
    expect(processes.map(procState)).not.toContain('T')
  })

  it('a crash while frozen is not restarted until thawed', async () => {
    const crasher = app('crash.mjs', 'setTimeout(() => process.exit(2), 150)')
    const instance = await service({ args: [crasher], backoff: { initialMs: 20, maxMs: 40 } })
    instance.start()
    await until(() => instance.status().restarts >= 1, 5000, 'a first restart')
    instance.freeze()
    // whatever was running when frozen is stopped; once the process is gone nothing new starts
    const restarts = instance.status().restarts
    await new Promise(resolve => setTimeout(resolve, 600))
    expect(instance.status().restarts).toBe(restarts)
    expect(instance.frozen).toBe(true)
  })

  it('a frozen instance is stopped with SIGKILL, without running again', async () => {
    const marker = join(bundle, 'ran-after-freeze')
    const stubborn = app('stubborn.mjs', `import { writeFileSync } from 'node:fs'\nprocess.on('SIGTERM', () => { writeFileSync(${JSON.stringify(marker)}, 'x') })\nsetInterval(() => {}, 1000)\n`)
    const instance = await service({ args: [stubborn] })
    instance.start()
    await until(() => instance.status().state === 'healthy', 5000, 'running')
    instance.freeze()
    const t0 = Date.now()
    await instance.stop()
    expect(Date.now() - t0).toBeLessThan(4000)
    expect(existsSync(marker)).toBe(false)
  })
})

describe('health of a running instance', () => {
  const FLAKY = `
import { createServer } from 'node:http'
let checks = 0
const failFrom = Number(process.argv[2])
const failTo = Number(process.argv[3])
createServer((req, res) => {
  if (req.url === '/health') { checks++; res.statusCode = checks >= failFrom && checks <= failTo ? 500 : 200; res.end(); return }
  res.end('ok')
}).listen(Number(process.env.PORT), '127.0.0.1')
`

  it('one failed check of a healthy instance does not take it out; several in a row do', async () => {
    const flaky = app('flaky.mjs', FLAKY)
    const once = await service({ args: [flaky, '3', '3'], health: { http: '/health' } })
    const states: InstanceState[] = []
    once.onChange(s => { states.push(s.state) })
    once.start()
    await until(() => once.status().state === 'healthy', 8_000, 'healthy')
    await new Promise(resolve => setTimeout(resolve, 4_000))
    expect(states).not.toContain('unhealthy')

    const broken = await service({ args: [flaky, '3', '1000'], health: { http: '/health' } })
    broken.start()
    await until(() => broken.status().state === 'healthy', 8_000, 'healthy')
    await until(() => broken.status().state === 'unhealthy', 10_000, 'unhealthy after failing checks')
  })
})

describe('an instance does not outlive its supervisor', () => {
  // a daemon killed with SIGKILL runs no stop(): its instances must end all the same, or a
  // single-instance application would run on here beside the copy started elsewhere
  async function orphanCheck (namespaces: boolean): Promise<void> {
    const pidFile = join(work, `app-${String(namespaces)}.pid`)
    const sleeper = app('sleeper.mjs', `import { writeFileSync } from 'node:fs'\nwriteFileSync(${JSON.stringify(pidFile)}, String(process.pid))\nsetInterval(() => {}, 1000)\n`)
    const supervisor = join(work, 'supervisor.mjs')
    writeFileSync(supervisor, `
import { ServiceInstance, freePort } from ${JSON.stringify(join(import.meta.dirname, '../../workloads/runner/index.ts'))}
const instance = new ServiceInstance({ instanceId: 'orphan-check-${process.pid}-${serial++}', dir: ${JSON.stringify(bundle)}, command: process.execPath, args: [${JSON.stringify(sleeper)}], env: {}, port: await freePort(), resources: { cpuMillis: 100, memoryMb: 64 }, logDir: ${JSON.stringify(logDir)} }, { namespaces: ${String(namespaces)} })
instance.start()
instance.onChange(s => { if (s.state === 'healthy') process.stdout.write('up ' + s.pid + '\\n') })
setInterval(() => {}, 1000)
`)
    const { spawn } = await import('node:child_process')
    const daemon = spawn(process.execPath, [supervisor], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    daemon.stdout.on('data', (c: Buffer) => { out += c.toString() })
    try {
      await until(() => out.includes('up ') && existsSync(pidFile), 15_000, 'the instance up')
      const hostPid = Number(/up (\d+)/.exec(out)![1])
      // the app's own pid inside a namespace differs: find the group by the launcher's host pid
      const members = (): number[] => readdirSync('/proc').filter(e => /^\d+$/.test(e)).map(Number).filter(p => {
        try { const stat = readFileSync(`/proc/${p}/stat`, 'utf8'); const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); return Number(f[2]) === hostPid && f[0] !== 'Z' } catch { return false }
      })
      expect(members().length).toBeGreaterThan(0)
      daemon.kill('SIGKILL')
      await until(() => members().length === 0, 5_000, 'every process of the instance gone after its supervisor was killed')
    } finally {
      daemon.kill('SIGKILL')
    }
  }

  it('without namespaces', async () => { await orphanCheck(false) })
  it('in namespaces of its own', async () => { await orphanCheck(true) })
})
