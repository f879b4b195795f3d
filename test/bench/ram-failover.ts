// Failover by lease, measured: a primary and two backups (three voters) on real libp2p nodes in
// this process, an interpreted guest replicated to both; the primary crashes (its guest stops and
// its node goes silent, no release) and the time until one backup runs the guest is taken, and
// the other backup is checked not to run it. Repeated; prints the median and the maximum.
import type { Libp2p } from 'libp2p'
import { DEFAULT_LEASE_MS, RamReplication, engineRestorer, startGuest, type TakeOver } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from '../ram-replication/mesh.ts'

const PREFIX = '/mycelium/bench-failover'
const RUNS = Number(process.env.RAM_BENCH_FAILOVER_RUNS ?? 5)

async function once (): Promise<{ failoverMs: number, copies: number }> {
  const nodes: Libp2p[] = []
  const services: RamReplication[] = []
  const takeOvers: TakeOver[] = []
  try {
    for (let i = 0; i < 3; i++) {
      const node = await startReplicationNode()
      nodes.push(node)
      const ram = new RamReplication(node, { protocolPrefix: PREFIX, secretKey: secretKeyOf(node), forward: false, restoreGuest: engineRestorer() })
      ram.onTakeOver((t) => { takeOvers.push(t) })
      await ram.start()
      services.push(ram)
    }
    await connect(nodes[0], [nodes[1], nodes[2]])
    await connect(nodes[1], [nodes[2]])
    const [p, ...backups] = services
    const vmId = `bench-${Math.random().toString(36).slice(2)}`
    const holder = await p.acquireLease(vmId, nodes.slice(1).map(n => n.peerId.toString()))
    const guest = p.keepLease(holder, await startGuest('interpreted', { vmId, paused: true, memoryBytes: 8 * 1024 * 1024, workload: { pattern: 'random', dirtyRate: 20_000 } }))
    guest.resume()
    const replication = await p.replicate(guest, { backups: nodes.slice(1).map(n => ({ peerId: n.peerId.toString(), via: [undefined] })), epochIntervalMs: 20 })
    await replication.initialSync()
    await waitFor(() => backups.every(b => (b.replicas?.status()[0]?.appliedEpoch ?? 0) > 3), 20_000, 'both backups past epoch 3')
    const crashedAt = performance.now()
    await guest.stop()
    await p.stop()
    await nodes[0].stop()
    await waitFor(() => takeOvers.length > 0, 10_000, 'a backup resuming the guest')
    const failoverMs = takeOvers[0].resumedAt - crashedAt
    await new Promise(resolve => setTimeout(resolve, DEFAULT_LEASE_MS * 2))
    for (const t of takeOvers) await t.guest.stop()
    return { failoverMs, copies: takeOvers.length }
  } finally {
    for (const ram of services) await ram.stop().catch(() => {})
    await stopAll(nodes)
  }
}

export async function failoverTable (): Promise<void> {
  const figures: number[] = []
  let extraCopies = 0
  for (let i = 0; i < RUNS; i++) {
    const { failoverMs, copies } = await once()
    figures.push(failoverMs)
    if (copies !== 1) extraCopies++
  }
  figures.sort((a, b) => a - b)
  console.log(`\nFailover by lease (lease ${DEFAULT_LEASE_MS} ms, interpreted guest, 2 backups, ${RUNS} crashes of the primary in this process):`)
  console.log('| crash → guest running on a backup, median | max | runs with more than one copy |')
  console.log('| --- | --- | --- |')
  console.log(`| ${figures[Math.floor(figures.length / 2)].toFixed(0)} ms | ${figures[figures.length - 1].toFixed(0)} ms | ${extraCopies} |`)
}
