// Links, forwarding and backups on real libp2p nodes (TCP on 127.0.0.1, noise, yamux): one
// primary, four rhizomorph nodes running the forwarder, and backups. The epochs here are byte
// images cut into stripes, to exercise the transport alone; replicating a running KVM guest is
// in replication-guest.test.ts. Links are sealed end to end with the nodes' identity keys.
import { createHash, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Libp2p } from 'libp2p'
import {
  BackupSession, EpochEncoder, ForwardRefusedError, ReplicaHost, StripeForwarder, StripeLink,
  replicationProtocols, silentLogger
} from '../../ram-replication/index.ts'
import type { Checkpoint, EpochAcknowledgement } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from './mesh.ts'

const PREFIX = '/mycelium/links-test'
const PAGE = 4096
const protocols = replicationProtocols(PREFIX)

function fullCheckpointOf (vmId: string, image: Uint8Array, epoch: number): Checkpoint {
  return {
    vmId,
    epoch,
    full: true,
    memoryBytes: image.length,
    pageSize: PAGE,
    pages: Array.from({ length: image.length / PAGE }, (_, index) => ({ index, data: image.subarray(index * PAGE, (index + 1) * PAGE) })),
    vcpu: { regs: new Uint8Array(144), sregs: new Uint8Array(312) },
    guestCounter: epoch,
    takenAt: Date.now()
  }
}

function dirtyCheckpointOf (vmId: string, image: Uint8Array, epoch: number, indexes: number[]): Checkpoint {
  return { ...fullCheckpointOf(vmId, image, epoch), full: false, pages: indexes.map(index => ({ index, data: image.slice(index * PAGE, (index + 1) * PAGE) })) }
}

describe('replication links over rhizomorph forwarders', () => {
  let primary: Libp2p
  let rhizomorphs: Libp2p[]
  let backups: Libp2p[]
  let forwarders: StripeForwarder[]
  let hosts: ReplicaHost[]

  beforeAll(async () => {
    primary = await startReplicationNode()
    rhizomorphs = await Promise.all([0, 1, 2, 3].map(async () => await startReplicationNode()))
    backups = await Promise.all([0, 1].map(async () => await startReplicationNode()))
    for (const rhizomorph of rhizomorphs) await connect(rhizomorph, backups)
    await connect(primary, [...rhizomorphs, ...backups])
    forwarders = rhizomorphs.map((node, index) => new StripeForwarder(node, { protocolPrefix: PREFIX, maxForwards: index === 3 ? 1 : 8 }))
    for (const forwarder of forwarders) await forwarder.start()
    hosts = backups.map(node => new ReplicaHost(node, { protocolPrefix: PREFIX, hashMemory: true, secretKey: secretKeyOf(node) }))
    for (const host of hosts) await host.start()
  })

  afterAll(async () => {
    for (const host of hosts ?? []) await host.stop()
    await stopAll([primary, ...(rhizomorphs ?? []), ...(backups ?? [])])
  })

  function session (vmId: string, backup: Libp2p, vias: Libp2p[], windowBytes: number, acks: EpochAcknowledgement[], run = 0, from: Libp2p = primary): BackupSession {
    return new BackupSession({
      node: from,
      run,
      protocols,
      vmId,
      backup: backup.peerId.toString(),
      routes: vias.map(via => ({ backup: backup.peerId.toString(), via: via.peerId.toString() })),
      windowBytes,
      secretKey: secretKeyOf(from),
      logger: silentLogger,
      onAck: (ack) => { acks.push(ack) },
      onResumed: () => {},
      onMismatch: () => { throw new Error('backup applied different content') }
    })
  }

  it('stripes an epoch over four forwarded links and the backup applies exactly what was sent', async () => {
    const image = new Uint8Array(randomBytes(4 * 1024 * 1024))
    const acks: EpochAcknowledgement[] = []
    const links = session('vm-four', backups[0], rhizomorphs.slice(0, 3), 1024 * 1024, acks)
    await links.open()
    const encoder = new EpochEncoder({ stripeBytes: 64 * 1024 })
    const encoded = encoder.encode(fullCheckpointOf('vm-four', image, 1))
    links.enqueue(encoded)
    await waitFor(() => acks.length === 1, 20_000, 'the epoch to be acknowledged')
    const replica = hosts[0].replica('vm-four')!
    expect(Buffer.from(replica.memory).equals(image)).toBe(true)
    expect(Buffer.from(acks[0].memoryHash!).equals(createHash('sha256').update(replica.memory).digest())).toBe(true)
    const status = links.status()
    expect(status.links.every(link => link.bytesSent > 0)).toBe(true)
    // Flow control: no link ever had more than its window sent and not yet receipted.
    expect(status.links.every(link => link.maxInFlightBytes <= 1024 * 1024)).toBe(true)
    // Heartbeats come back: each link knows its round trip.
    links.heartbeat(1)
    await waitFor(() => links.status().links.every(link => link.rttMs != null), 5000, 'heartbeat echoes')
    expect(links.status().links.every(link => link.rttMs! >= 0 && link.rttMs! < 5000)).toBe(true)
    await links.close()
    hosts[0].drop('vm-four')
  })

  it('re-sends the stripes of a link whose rhizomorph dies mid-epoch and never applies a torn epoch', async () => {
    const doomed = await startReplicationNode()
    await connect(doomed, [backups[0]])
    await connect(primary, [doomed])
    const doomedForwarder = new StripeForwarder(doomed, { protocolPrefix: PREFIX })
    await doomedForwarder.start()
    const image = new Uint8Array(randomBytes(16 * 1024 * 1024))
    const acks: EpochAcknowledgement[] = []
    const applied: number[] = []
    hosts[0].on('applied', (epoch) => { if (epoch.vmId === 'vm-kill') applied.push(epoch.epoch) })
    const links = session('vm-kill', backups[0], [rhizomorphs[0], doomed, rhizomorphs[1]], 2 * 1024 * 1024, acks)
    await links.open()
    const encoder = new EpochEncoder({ stripeBytes: 128 * 1024 })
    links.enqueue(encoder.encode(fullCheckpointOf('vm-kill', image, 1)))
    await waitFor(() => doomedForwarder.stats().bytesForwarded > 512 * 1024, 20_000, 'the doomed link to carry part of the epoch')
    await doomed.stop()
    await waitFor(() => acks.length === 1, 30_000, 'the epoch to be acknowledged over the surviving links')
    const replica = hosts[0].replica('vm-kill')!
    expect(Buffer.from(replica.memory).equals(image)).toBe(true)
    expect(links.status().resentStripes).toBeGreaterThan(0)
    expect(links.status().links[1].up).toBe(false)

    // The next epochs flow on the two links left, each applied whole.
    for (let epoch = 2; epoch <= 5; epoch++) {
      const dirty = [epoch * 7, epoch * 13, 1000 + epoch]
      for (const index of dirty) image.set(randomBytes(PAGE), index * PAGE)
      links.enqueue(encoder.encode(dirtyCheckpointOf('vm-kill', image, epoch, dirty)))
    }
    await waitFor(() => links.ackedEpoch === 5, 20_000, 'epoch 5 to be acknowledged')
    expect(Buffer.from(replica.memory).equals(image)).toBe(true)
    expect(applied).toEqual([1, 2, 3, 4, 5])
    await links.close()
    hosts[0].drop('vm-kill')
  })

  it('replicates the same epochs to two backups, each acknowledging on its own', async () => {
    const image = new Uint8Array(randomBytes(2 * 1024 * 1024))
    const acks: EpochAcknowledgement[][] = [[], []]
    const sessions = backups.map((backup, index) => session('vm-two', backup, rhizomorphs.slice(index * 2, index * 2 + 2).slice(0, index === 1 ? 1 : 2), 1024 * 1024, acks[index]))
    for (const each of sessions) await each.open()
    const encoder = new EpochEncoder()
    const first = encoder.encode(fullCheckpointOf('vm-two', image, 1))
    for (const each of sessions) each.enqueue(first)
    image.set(randomBytes(PAGE), 9 * PAGE)
    const second = encoder.encode(dirtyCheckpointOf('vm-two', image, 2, [9]))
    for (const each of sessions) each.enqueue(second)
    await waitFor(() => sessions.every(each => each.ackedEpoch === 2), 20_000, 'both backups to acknowledge epoch 2')
    for (const host of hosts) expect(Buffer.from(host.replica('vm-two')!.memory).equals(image)).toBe(true)
    expect(Buffer.from(acks[0].at(-1)!.memoryHash!).equals(acks[1].at(-1)!.memoryHash!)).toBe(true)
    // Stopping the VM for good releases the replicas on every backup.
    for (const each of sessions) await each.release()
    await waitFor(() => hosts.every(host => host.replica('vm-two') == null), 5000, 'the backups to drop their replicas')
  })

  it('a rhizomorph refuses forwards past its bound and to peers it cannot reach', async () => {
    const open = async (via: Libp2p, backup: string): Promise<StripeLink> => await StripeLink.open({
      node: primary,
      secretKey: secretKeyOf(primary),
      protocols,
      route: { backup, via: via.peerId.toString() },
      windowBytes: 1024 * 1024,
      maxFrameBytes: 4096,
      onFrame: () => {},
      onClose: () => {}
    })
    const first = await open(rhizomorphs[3], backups[0].peerId.toString())
    await expect(open(rhizomorphs[3], backups[1].peerId.toString())).rejects.toThrow(ForwardRefusedError)
    await first.close()
    await waitFor(() => forwarders[3].stats().active === 0, 5000, 'the forward to end')
    const stranger = await startReplicationNode()
    const strangerId = stranger.peerId.toString()
    await stranger.stop()
    await expect(open(rhizomorphs[3], strangerId)).rejects.toThrow(ForwardRefusedError)
    expect(forwarders[3].stats().refused).toBe(2)
  })

  it('a backup refuses forwarded links in the clear and links whose origin is forged', async () => {
    const acks: EpochAcknowledgement[] = []
    const applied: string[] = []
    hosts[1].on('applied', (epoch) => { applied.push(epoch.vmId) })
    const image = new Uint8Array(randomBytes(64 * PAGE))
    const encoded = new EpochEncoder().encode(fullCheckpointOf('vm-forged', image, 1))
    const attempt = async (node: typeof primary | { peerId: Libp2p['peerId'], handle: Libp2p['handle'], unhandle: Libp2p['unhandle'], dialProtocol: Libp2p['dialProtocol'] }, secretKey?: Uint8Array, direct = false): Promise<boolean> => {
      let closed = false
      const link = await StripeLink.open({
        node,
        protocols,
        secretKey,
        route: { backup: backups[1].peerId.toString(), via: direct ? undefined : rhizomorphs[0].peerId.toString() },
        windowBytes: 1 << 20,
        maxFrameBytes: 4096,
        onFrame: (_link, frame) => { if (frame.kind === 'epoch-applied') acks.push(frame as unknown as EpochAcknowledgement) },
        onClose: () => { closed = true }
      })
      for (const stripe of encoded.stripes) await link.sendStripe(stripe).catch(() => {})
      await waitFor(() => closed, 5000, 'the backup to close the link')
      return closed
    }
    // In the clear: refused.
    expect(await attempt(primary)).toBe(true)
    // A rhizomorph pretending to be the primary: it cannot seal with the primary's key.
    const impostor = rhizomorphs[2]
    await connect(impostor, [rhizomorphs[0]])
    const forged = { peerId: primary.peerId, handle: impostor.handle.bind(impostor), unhandle: impostor.unhandle.bind(impostor), dialProtocol: impostor.dialProtocol.bind(impostor) }
    expect(await attempt(forged, secretKeyOf(impostor))).toBe(true)
    // The same impostor directly: a direct link needs no seal, but its origin must be the connection's peer.
    await connect(impostor, [backups[1]])
    expect(await attempt(forged, secretKeyOf(impostor), true)).toBe(true)
    expect(acks).toEqual([])
    expect(applied).toEqual([])
    expect(hosts[1].replica('vm-forged')).toBeUndefined()
  })

  it('a direct link runs in the clear over its noise session, which already ends at the primary', async () => {
    await connect(primary, [backups[1]])
    const image = new Uint8Array(randomBytes(256 * PAGE))
    const acks: EpochAcknowledgement[] = []
    const direct = new BackupSession({
      node: primary,
      protocols,
      vmId: 'vm-direct',
      backup: backups[1].peerId.toString(),
      routes: [{ backup: backups[1].peerId.toString() }],
      windowBytes: 1 << 20,
      secretKey: secretKeyOf(primary),
      logger: silentLogger,
      onAck: (ack) => { acks.push(ack) },
      onResumed: () => {},
      onMismatch: () => { throw new Error('backup applied different content') }
    })
    await direct.open()
    direct.enqueue(new EpochEncoder().encode(fullCheckpointOf('vm-direct', image, 1)))
    await waitFor(() => acks.length === 1, 10_000, 'the epoch over the direct link')
    expect(Buffer.from(hosts[1].replica('vm-direct')!.memory).equals(image)).toBe(true)
    await direct.release()
  })

  it('a link refused at first is tried again until the deadline: the session opens once the backup serves links', async () => {
    // a backup node whose replica host is not running yet: its first stream is refused
    const late = await startReplicationNode()
    await connect(primary, [late])
    const directTo = (backup: Libp2p): BackupSession => new BackupSession({
      node: primary,
      protocols,
      vmId: 'vm-late',
      backup: backup.peerId.toString(),
      routes: [{ backup: backup.peerId.toString() }],
      windowBytes: 1 << 20,
      secretKey: secretKeyOf(primary),
      logger: silentLogger,
      onAck: () => {},
      onResumed: () => {},
      onMismatch: () => { throw new Error('backup applied different content') }
    })
    const host = new ReplicaHost(late, { protocolPrefix: PREFIX, hashMemory: true, secretKey: secretKeyOf(late) })
    try {
      const session = directTo(late)
      const opened = session.open(AbortSignal.timeout(5_000))
      await new Promise(resolve => setTimeout(resolve, 400))
      await host.start()
      await opened
      await session.release()

      // nothing serves links there: the open gives up at its deadline, with the reason
      const nobody = await startReplicationNode()
      await connect(primary, [nobody])
      const refused = directTo(nobody)
      const startedAt = Date.now()
      await expect(refused.open(AbortSignal.timeout(1_000))).rejects.toThrow(/could be opened/)
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900)
      await refused.release()
      await stopAll([nobody])
    } finally {
      await host.stop()
      await stopAll([late])
    }
  })

  it('a replica follows a restarted primary, refuses its older run, and passes to the node that took the VM over', async () => {
    const vmId = 'vm-runs'
    const first = new Uint8Array(randomBytes(64 * PAGE))
    const acks: EpochAcknowledgement[] = []
    const before = session(vmId, backups[0], [rhizomorphs[0]], 1 << 20, acks, 1)
    await before.open()
    const encoder = new EpochEncoder()
    before.enqueue(encoder.encode(fullCheckpointOf(vmId, first, 1)))
    first.set(randomBytes(PAGE), 3 * PAGE)
    before.enqueue(encoder.encode(dirtyCheckpointOf(vmId, first, 2, [3])))
    await waitFor(() => before.ackedEpoch === 2, 10_000, 'the first run to be acknowledged')
    await before.close()

    // The primary restarts: a newer run begins again at epoch 1 and is applied.
    const second = new Uint8Array(randomBytes(64 * PAGE))
    const restarted = session(vmId, backups[0], [rhizomorphs[0]], 1 << 20, acks, 2)
    await restarted.open()
    restarted.enqueue(new EpochEncoder().encode(fullCheckpointOf(vmId, second, 1)))
    await waitFor(() => restarted.ackedEpoch === 1, 10_000, 'the restarted run to be acknowledged')
    expect(Buffer.from(hosts[0].replica(vmId)!.memory).equals(second)).toBe(true)

    // A link of the older run is refused.
    const stale = session(vmId, backups[0], [rhizomorphs[1]], 1 << 20, acks, 1)
    await stale.open()
    stale.enqueue(new EpochEncoder().encode(fullCheckpointOf(vmId, first, 1)))
    await waitFor(() => stale.linksUp === 0, 10_000, 'the backup to close the stale link')
    await stale.close()
    await restarted.close()

    // The primary goes silent; another node that resumed the VM replicates it to the same backup.
    await waitFor(() => hosts[0].status().find(entry => entry.vmId === vmId)?.state === 'primary-lost', 10_000, 'the primary to be declared lost')
    const successor = rhizomorphs[2]
    await connect(successor, [rhizomorphs[0]])
    const third = new Uint8Array(randomBytes(64 * PAGE))
    const takeover = session(vmId, backups[0], [rhizomorphs[0]], 1 << 20, acks, 3, successor)
    await takeover.open()
    takeover.enqueue(new EpochEncoder().encode(fullCheckpointOf(vmId, third, 1)))
    await waitFor(() => takeover.ackedEpoch === 1, 10_000, 'the successor to be acknowledged')
    expect(hosts[0].replica(vmId)!.origin).toBe(successor.peerId.toString())
    expect(Buffer.from(hosts[0].replica(vmId)!.memory).equals(third)).toBe(true)
    await takeover.release()
  })
})
