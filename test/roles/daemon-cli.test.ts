// `mycelium role` on this machine without a daemon, and `mycelium start` refusing a bad role
// set-up with one clear line before it touches the home.
import { describe, it, expect, afterAll } from 'vitest'
import { existsSync } from 'node:fs'
import { TestNode } from '../harness/index.ts'
import { kvmOpens } from '../../ram-replication/index.ts'

describe('mycelium role without a daemon', () => {
  const node = new TestNode({ name: 'role-cli' })
  afterAll(async () => { await node.destroy() })

  it('measures this machine and prints the decision it would take, with the fields of the issue', async () => {
    const report = await node.cliJson(['role'])
    expect(['sclerotium', 'rhizomorph', 'hyphae']).toContain(report.role)
    expect(report.dedicated).toBe(false)
    expect(report.score).toBeGreaterThanOrEqual(0)
    expect(report.score).toBeLessThanOrEqual(100)
    expect(report.reasons.length).toBeGreaterThan(0)
    expect(report.hardware).toMatchObject({ kvm: kvmOpens(), onBattery: false, raspberryPi: null, arch: process.arch })
    expect(report.hardware.cpuCores).toBeGreaterThan(0)
    expect(report.hardware.memTotalBytes).toBeGreaterThan(report.hardware.memAvailableBytes)
    expect(report.hardware.diskFreeBytes).toBeGreaterThan(0)
    expect(typeof report.hardware.cpuModel).toBe('string')
    // no peer to dial back: reachability is unknown, not guessed
    expect(report.network).toEqual({ reachable: null })
    expect(report.running).toBeUndefined()
    // a machine without /dev/kvm is a fact the decision explains, not an error
    if (kvmOpens()) expect(report.reasons).toContain('KVM available → can host VM backups on both engines')
    else expect(report.reasons).toContain('no usable /dev/kvm → hosts VM backups on the interpreted engine only')
  })

  it('prints the reasons for a human, and takes an injected profile', async () => {
    const r = await node.cli(['role', '--hardware-profile', 'laptop-battery'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^role\s+hyphae\s+\(no daemon runs/m)
    expect(r.stdout).toMatch(/on battery/)
    expect(r.stdout).toMatch(/^reasons$/m)
  })

  it('`start` refuses an unknown role or a bad hardware profile with one line, before creating the home', async () => {
    const role = await node.cli(['start', '--role', 'mushroom'])
    expect(role.code).toBe(2)
    expect(role.stderr.split('\n')[0]).toBe('mycelium: --role must be sclerotium, rhizomorph, hyphae or auto (got "mushroom")')
    const profile = await node.cli(['start', '--hardware-profile', '{"base":"server-kvm","hardware":{"cpu":{"cores":-1}}}'])
    expect(profile.code).toBe(1)
    expect(profile.stderr.trim().split('\n')).toHaveLength(1)
    expect(profile.stderr).toMatch(/^mycelium: cannot start with this role set-up: .*cores must be a non-negative number/)
    expect(existsSync(`${node.home}/node.key`)).toBe(false)
    const set = await node.cli(['role', '--set', 'sclerotium'])
    expect(set.code).toBe(1)
    expect(set.stderr).toMatch(/no daemon is running .* mycelium start --role sclerotium/)
  })
})
