import { describe, it, expect, afterEach } from 'vitest'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { Registry } from 'prom-client'
import { kvmOpens } from '../../ram-replication/index.ts'
import { RoleService, createRoleService, assessRole, libp2pRoleEffects, loadHardwareProfile, parseHardwareProfile, roleMetrics, type HardwareProfile } from '../../roles/index.ts'
import { startNode, waitFor, quietLog, ROLE_TOPIC, type RoleTestNode } from './nodes.ts'

describe('role service', () => {
  const running: Array<{ node: RoleTestNode, roles?: RoleService }> = []
  afterEach(async () => {
    await Promise.all(running.splice(0).map(async r => { await r.roles?.stop(); await r.node.stop() }))
  })

  it('prints, without a running node, the decision this machine would take', async () => {
    const report = await assessRole({ dataDir: tmpdir() })
    expect(['sclerotium', 'rhizomorph', 'hyphae']).toContain(report.role)
    expect(report.hardware.cpuCores).toBe(Number(execFileSync('nproc', { encoding: 'utf8' }).trim()))
    // a machine without /dev/kvm is reported as such, not as an error
    expect(report.hardware.kvm).toBe(kvmOpens())
    expect(report.hardware.arch).toBe(process.arch)
    expect(report.hardware.diskFreeBytes).toBeGreaterThan(0)
    expect(report.network).toEqual({ reachable: null })
    expect(report.reasons.some(r => /reachability not measured/.test(r))).toBe(true)
    expect(JSON.parse(JSON.stringify(report))).toEqual(report)
    const pinned = await assessRole({ dataDir: tmpdir(), override: 'sclerotium', profile: loadHardwareProfile('pi-zero-2w') })
    expect(pinned).toMatchObject({ role: 'sclerotium', dedicated: true, hardware: { raspberryPi: 'Raspberry Pi Zero 2 W Rev 1.0', memTotalBytes: 512 * 1024 ** 2 } })
  })

  it('measures the network with the probe protocol and reports reachability, RTT and throughput', async () => {
    const a = await startNode()
    const b = await startNode()
    running.push({ node: a.node }, { node: b.node })
    await a.node.dial(b.node.getMultiaddrs()[0])
    const roles = createRoleService(a.node, {
      topicPrefix: 'mycelium/myctest',
      secretKey: a.secretKey,
      dataDir: tmpdir(),
      log: quietLog,
      timing: { firstNetworkMeasurementMs: 60_000 }
    })
    running[0].roles = roles
    await roles.start()
    expect(roles.report().network.reachable).toBe(null)
    await roles.measureNetworkNow()
    const report = roles.report()
    expect(report.network.reachable).toBe(true)
    expect(report.network.rttMs).toBeGreaterThan(0)
    expect(report.network.throughputMbps).toBeGreaterThan(0)
    expect(report.reasons.some(r => /reachable from outside/.test(r))).toBe(true)
    expect(report.running).toMatchObject({ changes: 0, nodes: 1 })
  })

  it('drops to hyphae as soon as the power source changes, hysteresis notwithstanding, and counts the changes', async () => {
    const { node, secretKey } = await startNode()
    let profile: HardwareProfile = loadHardwareProfile('laptop-mains')
    const registry = new Registry()
    const roles = new RoleService({
      host: node,
      pubsub: node.services.pubsub,
      secretKey,
      topic: ROLE_TOPIC,
      effects: libp2pRoleEffects({ dht: node.services.dht, relay: node.services.relay }),
      dataDir: tmpdir(),
      profile: () => profile,
      log: quietLog,
      timing: { advertiseIntervalMs: 200, settleMs: 300, confirmMs: 300, powerPollIntervalMs: 100, hysteresisMs: 60_000 },
      metrics: roleMetrics(registry)
    })
    running.push({ node, roles })
    await roles.start()
    // alone, the network needs this node: it promotes itself despite its battery
    await waitFor(() => roles.status().role === 'sclerotium', 5_000, 'self-promotion of a lone node')
    expect(node.services.relay.mode).toBe('full')
    const before = await registry.metrics()
    expect(before).toContain('mycelium_role{role="sclerotium"} 1')
    expect(before).toContain(`mycelium_role_score ${roles.status().score}`)
    expect(before).toContain('mycelium_role_view_sclerotia_target 1')

    profile = parseHardwareProfile({ base: 'laptop-mains', hardware: { battery: { charging: false, onBattery: true, percent: 70 } } })
    await waitFor(() => roles.status().role === 'hyphae', 2_000, 'demotion on battery')
    expect(roles.status().reasons.join('\n')).toMatch(/hard constraint changed/)
    expect(node.services.dht.getMode()).toBe('client')
    const after = await registry.metrics()
    expect(after).toContain('mycelium_role{role="hyphae"} 1')
    expect(after).toContain('mycelium_role{role="sclerotium"} 0')
    expect(after).toContain('mycelium_role_changes_total{from="rhizomorph",to="sclerotium"} 1')
    expect(after).toContain('mycelium_role_changes_total{from="sclerotium",to="hyphae"} 1')
    expect(roles.status().changes).toBe(2)
  })
})
