// Collection of instance directories against real instances: LocalInstances unpacks signed
// bundles and runs them as processes under a temporary home, as a daemon does; the collector
// removes the unpacked copy of an older bundle and, once nothing of an application runs, its
// whole directory, each only after the grace period, and never what a running instance or one
// being started or stopped uses. The grace setting is read from the environment.
import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { randomSecretKey } from '../../crypto/index.ts'
import { packBundle, openBundle, type SignedBundle } from '../../workloads/bundle/index.ts'
import { LocalInstances } from '../../node/workloads/local-instances.ts'
import { InstanceDirCollector } from '../../node/workloads/instance-dir-collector.ts'
import { workloadsSettingsFromEnv, APPS_GRACE_ENV, DEFAULT_APPS_GRACE_MS, LOG_FOLLOWERS_ENV, DEFAULT_LOG_FOLLOWERS, LOG_FOLLOW_HOLD_ENV, DEFAULT_LOG_FOLLOW_HOLD_MS } from '../../node/workloads/workloads-settings.ts'

const GRACE = 60_000
const key = randomSecretKey()
/** the collector's log lines, as JSON objects */
const logged: Array<{ msg: string, app?: string }> = []
const log = pino({ level: 'info' }, { write: (line: string) => { logged.push(JSON.parse(line)) } })

function bundle (name: string, version: string): SignedBundle {
  const source = `console.log('${name} ${version} up'); setInterval(() => {}, 1000)\n`
  return openBundle(packBundle({ manifest: { name, version, kind: 'service', command: 'node', args: ['app.mjs'], resources: { cpuMillis: 100, memoryMb: 64 } } as never, files: [{ path: 'app.mjs', bytes: new TextEncoder().encode(source), executable: false }], secretKey: key }))
}

let root: string
let instances: LocalInstances
let collector: InstanceDirCollector

beforeEach(() => {
  logged.length = 0
  root = join(mkdtempSync(join(tmpdir(), 'myc-instances-')), 'apps/instances')
  instances = new LocalInstances({ dir: root, arch: 'x86_64', log, onChange: () => {} })
  collector = new InstanceDirCollector({ root, log, graceMs: GRACE })
})

afterEach(async () => {
  await instances.stopAll()
  rmSync(join(root, '../..'), { recursive: true, force: true })
})

async function healthy (name: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (instances.health(name) !== 'healthy') {
    if (Date.now() > deadline) throw new Error(`${name} did not become healthy`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** Makes `path` and what it holds look last changed `ms` ago. */
function age (path: string, ms: number): void {
  const t = new Date(Date.now() - ms)
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) age(join(path, entry.name), ms)
    else utimesSync(join(path, entry.name), t, t)
  }
  utimesSync(path, t, t)
}

describe('instance directory collection', () => {
  it('removes an older bundle\'s copy beside a running instance after the grace, and all of a stopped one after its grace', async () => {
    const v1 = bundle('web', '1.0.0')
    const v2 = bundle('web', '2.0.0')
    const copy1 = join(root, 'web', v1.digest.slice(0, 16))
    const copy2 = join(root, 'web', v2.digest.slice(0, 16))
    await instances.start('web', v1)
    await healthy('web')
    // unpacked long ago, running all along: never removed, however old
    age(join(root, 'web'), 10 * GRACE)
    expect(collector.collect(instances.dirUse())).toEqual([])
    expect(existsSync(copy1)).toBe(true)

    // a new bundle: the old copy stopped being used now, so it stays for the grace period
    await instances.start('web', v2)
    await healthy('web')
    expect(existsSync(copy1)).toBe(true)
    expect(collector.collect(instances.dirUse())).toEqual([])
    const later = Date.now() + GRACE + 1000
    const removed = collector.collect(instances.dirUse(), later)
    expect(removed).toMatchObject([{ name: 'web', what: 'copy', path: copy1 }])
    expect(existsSync(copy1)).toBe(false)
    expect(existsSync(copy2)).toBe(true)
    expect(readdirSync(join(root, 'web', 'logs'))).toContain('stdout.log')
    // the running copy and the logs stay, even far past the grace
    expect(collector.collect(instances.dirUse(), Date.now() + 10 * GRACE)).toEqual([])

    // stopped: the stop restarts the clock (its logs stay readable for the grace), then all of it goes
    age(join(root, 'web'), 10 * GRACE)
    await instances.stop('web')
    expect(instances.logDirOf('web')).toBe(join(root, 'web', 'logs'))
    expect(collector.collect(instances.dirUse(), Date.now() + GRACE / 2)).toEqual([])
    expect(collector.collect(instances.dirUse(), Date.now() + GRACE + 1000)).toMatchObject([{ name: 'web', what: 'instance', path: join(root, 'web') }])
    expect(existsSync(join(root, 'web'))).toBe(false)
    expect(instances.logDirOf('web')).toBeUndefined()
    expect(collector.removedCount).toBe(2)
    expect(collector.recent.map(r => r.what)).toEqual(['copy', 'instance'])
    expect(logged.filter(l => l.msg.includes('removed')).map(l => [l.app, l.msg])).toEqual([
      ['web', 'unpacked copy removed: the instance here runs another bundle'],
      ['web', 'instance directory removed: no instance of it runs here']
    ])
  })

  it('dates what a crashed daemon left by its last output, and never touches a name being started or stopped', async () => {
    // a daemon killed mid-run: no stop touched these; one printed a minute ago, one long ago
    for (const name of ['recent', 'old', 'busy']) {
      mkdirSync(join(root, name, 'abcdef0123456789'), { recursive: true })
      mkdirSync(join(root, name, 'logs'))
      writeFileSync(join(root, name, 'logs', 'stdout.log'), 'last words\n')
      age(join(root, name), 10 * GRACE)
    }
    const t = new Date(Date.now() - GRACE / 2)
    utimesSync(join(root, 'recent', 'logs', 'stdout.log'), t, t)
    const removed = collector.collect({ busy: new Set(['busy']), running: new Map() })
    expect(removed.map(r => r.name)).toEqual(['old'])
    expect(readdirSync(root).sort()).toEqual(['busy', 'recent'])
  })

  it('marks a name busy while it starts, so no pass removes what is being unpacked', async () => {
    const v1 = bundle('api', '1.0.0')
    const starting = instances.start('api', v1)
    expect(instances.dirUse().busy.has('api')).toBe(true)
    await starting
    expect(instances.dirUse().busy.has('api')).toBe(false)
    expect(instances.dirUse().running.get('api')).toBe(join(root, 'api', v1.digest.slice(0, 16)))
    const stopping = instances.stop('api')
    expect(instances.dirUse().busy.has('api')).toBe(true)
    await stopping
    expect(instances.dirUse()).toEqual({ busy: new Set(), running: new Map() })
  })
})

describe('the grace setting', () => {
  it('defaults to an hour, takes milliseconds from the environment and refuses nonsense with the variable named', () => {
    expect(workloadsSettingsFromEnv({})).toMatchObject({ graceMs: DEFAULT_APPS_GRACE_MS, collectEveryMs: 60_000 })
    expect(DEFAULT_APPS_GRACE_MS).toBe(3_600_000)
    expect(workloadsSettingsFromEnv({ [APPS_GRACE_ENV]: '10000' })).toMatchObject({ graceMs: 10_000, collectEveryMs: 5_000 })
    expect(workloadsSettingsFromEnv({ [APPS_GRACE_ENV]: '86400000' }).collectEveryMs).toBe(60_000)
    for (const bad of ['10s', '-5', '999', '1e6', 'soon']) {
      expect(() => workloadsSettingsFromEnv({ [APPS_GRACE_ENV]: bad })).toThrow(new RegExp(`^${APPS_GRACE_ENV} must be a whole number of milliseconds, at least 1000 \\(got "${bad}"\\)$`))
    }
  })

  it('the log followers a node serves and how long one may fall behind: 16 and 10 s unless set, and nonsense refused', () => {
    expect(workloadsSettingsFromEnv({})).toMatchObject({ logFollowers: DEFAULT_LOG_FOLLOWERS, logFollowHoldMs: DEFAULT_LOG_FOLLOW_HOLD_MS })
    expect([DEFAULT_LOG_FOLLOWERS, DEFAULT_LOG_FOLLOW_HOLD_MS]).toEqual([16, 10_000])
    expect(workloadsSettingsFromEnv({ [LOG_FOLLOWERS_ENV]: '64', [LOG_FOLLOW_HOLD_ENV]: '30000' })).toMatchObject({ logFollowers: 64, logFollowHoldMs: 30_000 })
    for (const bad of ['0', '1025', 'many', '8.5']) {
      expect(() => workloadsSettingsFromEnv({ [LOG_FOLLOWERS_ENV]: bad })).toThrow(new RegExp(`^${LOG_FOLLOWERS_ENV} must be a whole number of followers, from 1 to 1024 \\(got "${bad.replace('.', '\\.')}"\\)$`))
    }
    for (const bad of ['999', '600001', '10s']) {
      expect(() => workloadsSettingsFromEnv({ [LOG_FOLLOW_HOLD_ENV]: bad })).toThrow(new RegExp(`^${LOG_FOLLOW_HOLD_ENV} must be a whole number of milliseconds, from 1000 to 600000 \\(got "${bad}"\\)$`))
    }
  })
})
