// A primary in its own process, for the failover test: a guest (on the engine the test names) replicated to one backup
// through forwarders. It prints one JSON line per event on stdout and runs until killed.
import { PrimaryReplication, startGuest } from '../../ram-replication/index.ts'
import type { GuestEngine } from '../../ram-replication/index.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { secretKeyOf, startReplicationNode } from './mesh.ts'

interface PrimaryProcessConfig {
  prefix: string
  backup: string
  links: Array<{ peerId: string, addrs: string[] }>
  memoryBytes: number
  dirtyRate: number
  engine: GuestEngine
}

const config = JSON.parse(process.argv[2]) as PrimaryProcessConfig
const say = (event: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(event)}\n`) }

const node = await startReplicationNode()
for (const link of config.links) await node.dial(link.addrs.map(addr => multiaddr(addr)))
const guest = await startGuest(config.engine, { memoryBytes: config.memoryBytes, workload: { pattern: 'random', dirtyRate: config.dirtyRate } })
const replication = new PrimaryReplication({
  node,
  protocolPrefix: config.prefix,
  guest,
  secretKey: secretKeyOf(node),
  backups: [{ peerId: config.backup, via: config.links.map(link => link.peerId) }],
  epochIntervalMs: 20,
  heartbeatMs: 50
})
replication.on('ack', (ack) => { say({ event: 'ack', epoch: ack.epoch, guestCounter: ack.guestCounter }) })
await replication.start()
say({ event: 'started', vmId: guest.vmId, peerId: node.peerId.toString() })
