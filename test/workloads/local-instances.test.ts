// Two daemons on one machine run an instance of the same application and bundle (a test
// cluster, two nodes under one service manager): each instance has a cgroup of its own, so one
// daemon starting or stopping its instance leaves the other's process alone (the cgroup of an
// instance used to be named for the application and bundle only, and a start killed what it
// found there as leftovers of a crashed run). Real processes; on a host without writable
// cgroups there is no shared cgroup to begin with, and the test shows the processes untouched.
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { randomSecretKey } from '../../crypto/index.ts'
import { packBundle, openBundle } from '../../workloads/bundle/index.ts'
import { LocalInstances } from '../../node/workloads/local-instances.ts'
import { waitFor } from '../harness/index.ts'

const log = pino({ level: 'silent' })
const homes: string[] = []
const daemons: LocalInstances[] = []

function daemon (): LocalInstances {
  const home = mkdtempSync(join(tmpdir(), 'myc-local-'))
  homes.push(home)
  const instances = new LocalInstances({ dir: join(home, 'apps/instances'), arch: 'x86_64', log, onChange: () => {} })
  daemons.push(instances)
  return instances
}

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stopAll()
  for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true })
})

const bundle = openBundle(packBundle({
  manifest: { name: 'web', version: '1.0.0', kind: 'service', command: 'node', args: ['app.mjs'], resources: { cpuMillis: 100, memoryMb: 64 } } as never,
  files: [{ path: 'app.mjs', bytes: new TextEncoder().encode('setInterval(() => {}, 1000)\n'), executable: false }],
  secretKey: randomSecretKey()
}))

async function running (d: LocalInstances): Promise<number> {
  await waitFor(() => d.health('web') === 'healthy', { timeoutMs: 10_000, what: 'the instance healthy' })
  return d.view('web')!.pid!
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('instances of one bundle on two daemons of one machine', () => {
  it('one daemon starting and stopping its instance leaves the other\'s process running', async () => {
    const a = daemon()
    const b = daemon()
    await a.start('web', bundle)
    const pid = await running(a)
    await b.start('web', bundle)
    const other = await running(b)
    // each in a cgroup of its own, where the host has cgroups
    const cgroups = [pid, other].map(p => readFileSync(`/proc/${p}/cgroup`, 'utf8'))
    if (cgroups[0].includes('/mycelium/')) expect(cgroups[0]).not.toBe(cgroups[1])
    await b.stop('web')
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(alive(pid)).toBe(true)
    expect(a.view('web')).toMatchObject({ pid, restarts: 0, health: 'healthy' })
  })
})
