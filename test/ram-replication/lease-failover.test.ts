// At most one running copy of a VM, on real libp2p nodes with interpreted guests (every
// machine): a primary and two backups (three voters). The primary is killed, or cut off from
// both backups while its guest runs; exactly one backup resumes, only after the primary's vCPU
// stopped, and the old primary stands down when the partition heals. Each host logs the
// instants at which its guest made progress: the two logs must not overlap in time.
import { afterEach, describe, expect, it } from 'vitest'
import type { Libp2p } from 'libp2p'
import { RamReplication, engineRestorer, startGuest, type RunningGuest, type TakeOver } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from './mesh.ts'

const PREFIX = '/mycelium/lease-test'
const LEASE_MS = 500

interface Host {
  node: Libp2p
  ram: RamReplication
  takeOvers: TakeOver[]
  /** performance.now() instants at which this host's guest counter had moved since the last look */
  progress: number[]
}

/** Sample a guest's counter every 5 ms; record when it moved (the guest ran here then). */
function watch (host: Host, guest: RunningGuest): () => void {
  let last = guest.guestCounter()
  const timer = setInterval(() => {
    const now = guest.guestCounter()
    if (now !== last) host.progress.push(performance.now())
    last = now
  }, 5)
  return () => { clearInterval(timer) }
}

describe('leases: one running copy of a VM', () => {
  const nodes: Libp2p[] = []
  const services: RamReplication[] = []
  const stops: Array<() => void> = []
  afterEach(async () => {
    for (const stop of stops.splice(0)) stop()
    for (const ram of services.splice(0)) await ram.stop().catch(() => {})
    await stopAll(nodes.splice(0))
  })

  async function cluster (cut: Set<string>, options: { brokenRestorer?: number } = {}): Promise<Host[]> {
    const hosts: Host[] = []
    for (let i = 0; i < 3; i++) {
      const self: { id?: string } = {}
      // a partition cuts the primary (host 0) from the others, both ways
      const node = await startReplicationNode(0, (peer) => self.id !== undefined && (cut.has(self.id) !== cut.has(peer)))
      self.id = node.peerId.toString()
      nodes.push(node)
      // a backup whose guest will not start (its restorer fails, as on a node short of memory)
      const restoreGuest = options.brokenRestorer === i ? async () => { throw new Error('cannot start guests here') } : engineRestorer()
      const ram = new RamReplication(node, { protocolPrefix: PREFIX, secretKey: secretKeyOf(node), backup: true, forward: false, restoreGuest, leaseMs: LEASE_MS })
      services.push(ram)
      await ram.start()
      const host: Host = { node, ram, takeOvers: [], progress: [] }
      ram.onTakeOver((t) => { host.takeOvers.push(t); stops.push(watch(host, t.guest as RunningGuest)) })
      hosts.push(host)
    }
    await connect(hosts[0].node, [hosts[1].node, hosts[2].node])
    await connect(hosts[1].node, [hosts[2].node])
    return hosts
  }

  async function runVm (hosts: Host[]): Promise<{ vmId: string, guest: RunningGuest }> {
    const [p, b1, b2] = hosts
    const vmId = `vm-${Math.random().toString(36).slice(2)}`
    const holder = await p.ram.acquireLease(vmId, [b1.node.peerId.toString(), b2.node.peerId.toString()])
    const guest = p.ram.keepLease(holder, await startGuest('interpreted', { vmId, paused: true, memoryBytes: 8 * 1024 * 1024, workload: { pattern: 'random', dirtyRate: 20_000 } }))
    guest.resume()
    stops.push(watch(p, guest))
    const replication = await p.ram.replicate(guest, { backups: [b1, b2].map(h => ({ peerId: h.node.peerId.toString(), via: [undefined] })), epochIntervalMs: 20 })
    await replication.initialSync()
    await waitFor(() => [b1, b2].every(h => (h.ram.replicas?.status()[0]?.appliedEpoch ?? 0) > 3), 20_000, 'both backups past epoch 3')
    return { vmId, guest }
  }

  function resumedOn (hosts: Host[]): Host[] {
    return hosts.filter(h => h.takeOvers.length > 0)
  }

  it('the primary dies: exactly one backup resumes, within a second of the lease running out', async () => {
    const hosts = await cluster(new Set())
    const { vmId, guest } = await runVm(hosts)
    // a crash: the guest stops and nothing more leaves the node (no release)
    const diedAt = performance.now()
    await guest.stop()
    await hosts[0].ram.stop()
    await hosts[0].node.stop()
    await waitFor(() => resumedOn(hosts).length > 0, 5000, 'a backup resuming the guest')
    const [winner] = resumedOn(hosts)
    const took = winner.takeOvers[0]
    expect(took.vmId).toBe(vmId)
    // failover after the crash: the lease runs out (≤ D·(1+drift) after the last renewal) plus the
    // take-over; bench:ram measures the figure, this bound only says it is not the next timeout
    expect(took.resumedAt - diedAt).toBeLessThan(3000)
    await new Promise(resolve => setTimeout(resolve, LEASE_MS * 3))
    expect(resumedOn(hosts)).toHaveLength(1)
    // the winner keeps the lease with the other backup's vote; the guest goes on from its epoch
    expect(winner.ram.lease(vmId)?.holds).toBe(true)
    const counter = (took.guest as RunningGuest).guestCounter()
    expect(counter).toBeGreaterThan(took.guestCounter)
    // re-protection moves the lease to a new group (a quorum of the old and of the new one
    // grant it); the dead primary and the other old backup are no longer voters
    const other = hosts.find(h => h !== winner && h !== hosts[0])!
    const fresh = await startReplicationNode()
    nodes.push(fresh)
    const freshRam = new RamReplication(fresh, { protocolPrefix: PREFIX, secretKey: secretKeyOf(fresh), leaseMs: LEASE_MS })
    services.push(freshRam)
    await freshRam.start()
    await connect(winner.node, [fresh])
    expect(other.ram.replicas?.status().map(r => r.vmId)).toEqual([vmId])
    expect(await winner.ram.regroup(vmId, [fresh.peerId.toString()])).toBe(true)
    const lease = winner.ram.lease(vmId)!
    expect(lease.voters).toEqual([winner.node.peerId.toString(), fresh.peerId.toString()])
    expect(lease.generation).toBe(2)
    await new Promise(resolve => setTimeout(resolve, LEASE_MS))
    expect(winner.ram.lease(vmId)?.holds).toBe(true)
    expect(freshRam.leases.voter.view(vmId)?.holder).toBe(winner.node.peerId.toString())
    // the old backup, left out of the new group, drops its stale copy and never campaigns
    expect(other.ram.replicas?.status()).toEqual([])
    expect(other.takeOvers).toEqual([])
  }, 60_000)

  it('the primary is cut off from both backups: it stops its vCPU before a backup resumes, never runs again, and stands down after the heal', async () => {
    const cut = new Set<string>()
    const hosts = await cluster(cut)
    const { vmId, guest } = await runVm(hosts)
    const [p, b1, b2] = hosts
    cut.add(p.node.peerId.toString())
    await Promise.all(p.node.getConnections().map(async c => { await c.close() }))
    await waitFor(() => resumedOn(hosts).length > 0, 5000, 'a backup resuming the guest')
    const [winner] = resumedOn(hosts)
    expect([b1, b2]).toContain(winner)
    expect(p.ram.lease(vmId)?.fenced).toBe(true)
    const pausedCounter = guest.guestCounter()
    // the two hosts' progress never overlaps in time: the old primary's last step came first
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(winner.progress.length).toBeGreaterThan(0)
    expect(Math.min(...winner.progress)).toBeGreaterThan(Math.max(...p.progress))
    expect(guest.guestCounter()).toBe(pausedCounter)
    // heal: the old primary learns the newer term and stops its guest for good
    cut.clear()
    await connect(p.node, [b1.node, b2.node])
    await waitFor(() => p.ram.lease(vmId) === undefined, 5000, 'the old primary standing down')
    expect(guest.state).toBe('stopped')
    expect(resumedOn(hosts)).toHaveLength(1)
  }, 60_000)

  it('a backup whose guest will not start does not hold the other back: the other resumes', async () => {
    const hosts = await cluster(new Set(), { brokenRestorer: 1 })
    const { vmId, guest } = await runVm(hosts)
    const diedAt = performance.now()
    await guest.stop()
    await hosts[0].ram.stop()
    await hosts[0].node.stop()
    await waitFor(() => hosts[2].takeOvers.length > 0, 5000, 'the working backup resuming the guest')
    expect(hosts[2].takeOvers[0].vmId).toBe(vmId)
    expect(hosts[1].takeOvers).toEqual([])
    expect(hosts[2].takeOvers[0].resumedAt - diedAt).toBeLessThan(3000)
  }, 60_000)
})
