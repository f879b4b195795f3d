// The per-node service the daemon starts: forwarder, replicas and primaries in one object,
// on real libp2p nodes with a real guest, over each engine (the interpreter everywhere, KVM
// where /dev/kvm opens; otherwise that variant is skipped, the reason in its name).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Libp2p } from 'libp2p'
import { RamReplication, VmNotFoundError, allocateGuestMemory, engineRestorer, ramReplication, startGuest } from '../../ram-replication/index.ts'
import { guestEngineVariants, titled } from '../harness/index.ts'
import type { ReplicationStatus, ReplicaStatus } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from './mesh.ts'

const PREFIX = '/mycelium/ram-service-test'

for (const { engine, capability } of guestEngineVariants()) {
  describe.skipIf(capability.missing != null)(titled(`the RAM replication service of a node, guest on the ${engine} engine`, capability), () => {
    let nodes: Libp2p[]
    let services: RamReplication[]

    beforeAll(async () => {
      nodes = await Promise.all([0, 1, 2, 3].map(async () => await startReplicationNode()))
      // Node 0 runs the VM, nodes 1 and 2 forward, node 3 backs it up.
      for (const node of nodes.slice(1, 3)) await connect(node, [nodes[3]])
      await connect(nodes[0], nodes.slice(1, 3))
      services = nodes.map(node => ramReplication({
        protocolPrefix: PREFIX,
        secretKey: secretKeyOf(node),
        allocateMemory: allocateGuestMemory,
        restoreGuest: engineRestorer()
      })(node))
      for (const service of services) await service.start()
    })

    afterAll(async () => {
      for (const service of services ?? []) await service.stop()
      await stopAll(nodes ?? [])
    })

    it('runs, lists, reports and stops a replicated VM', async () => {
      const guest = await startGuest(engine, { memoryBytes: 8 * 1024 * 1024, workload: { pattern: 'hot', dirtyRate: 2000, reportEvery: 8 } })
      const backup = nodes[3].peerId.toString()
      const replication = await services[0].replicate(guest, { backups: [{ peerId: backup, via: [nodes[1], nodes[2]].map(node => node.peerId.toString()) }], profile: 'auto' })
      await replication.initialSync()
      await waitFor(() => replication.status().backups[0].ackedEpoch >= 5, 20_000, 'five acknowledged epochs')

      expect(services[0].list()).toEqual([expect.objectContaining({ vmId: guest.vmId, role: 'primary', state: 'replicating' })])
      expect(services[3].list()).toEqual([expect.objectContaining({ vmId: guest.vmId, role: 'backup', origin: nodes[0].peerId.toString() })])
      const status = services[0].status(guest.vmId) as ReplicationStatus
      expect(status).toMatchObject({ vmId: guest.vmId, primary: nodes[0].peerId.toString(), state: 'replicating' })
      expect(status.backups[0]).toMatchObject({ peerId: backup })
      expect(status.links.map(link => link.via)).toEqual([nodes[1].peerId.toString(), nodes[2].peerId.toString()])
      expect(status.guestCounter).toBeGreaterThan(0)
      await waitFor(() => (services[0].status(guest.vmId) as ReplicationStatus).links.every(link => link.rttMs != null), 5000, 'link round trips')
      // Loopback round trips are LAN round trips: the automatic profile settles on LAN settings.
      await waitFor(() => replication.profile?.name === 'lan', 15_000, 'the automatic LAN profile')
      expect((services[0].status(guest.vmId) as ReplicationStatus).profile).toBe('lan')
      expect((services[3].status(guest.vmId) as ReplicaStatus).appliedEpoch).toBeGreaterThanOrEqual(5)

      await services[0].stopVm(guest.vmId)
      expect(services[0].list()).toEqual([])
      await waitFor(() => services[3].list().length === 0, 5000, 'the backup to drop its replica')
      expect(() => services[0].status(guest.vmId)).toThrow(VmNotFoundError)
    })
  })
}
