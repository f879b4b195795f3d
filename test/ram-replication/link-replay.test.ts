// Replay attacks on a sealed link by the forwarder in the middle, on real libp2p nodes (TCP on
// 127.0.0.1, noise, yamux). The forwarder records every frame the primary sends; it cannot read
// or forge them, so what is left to it is playing them again: inside the live session, in
// another order, or as a whole session on a new stream. Each must be refused, close the link
// with an error that names the fault, and leave the backup's replica and lastHeard untouched.
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Libp2p } from 'libp2p'
import { EpochEncoder, ReplicaHost, StripeLink, replicationProtocols } from '../../ram-replication/index.ts'
import type { Checkpoint, ReplicationLogger } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from './mesh.ts'
import { RecordingForwarder } from './recording-forwarder.ts'
import type { RecordedSession } from './recording-forwarder.ts'

const PREFIX = '/mycelium/replay-test'
const PAGE = 4096
const PRIMARY_TIMEOUT_MS = 800
const protocols = replicationProtocols(PREFIX)

function checkpointOf (vmId: string, image: Uint8Array, epoch: number, pages: number[]): Checkpoint {
  return {
    vmId,
    epoch,
    full: epoch === 1,
    memoryBytes: image.length,
    pageSize: PAGE,
    pages: pages.map(index => ({ index, data: image.slice(index * PAGE, (index + 1) * PAGE) })),
    vcpu: { regs: new Uint8Array(144), sregs: new Uint8Array(312) },
    guestCounter: epoch,
    takenAt: Date.now()
  }
}

describe('a sealed link through a forwarder that records and replays it', () => {
  let primary: Libp2p
  let mitm: Libp2p
  let backup: Libp2p
  let forwarder: RecordingForwarder
  let host: ReplicaHost
  const closedBecause: string[] = []
  const lostAt = new Map<string, number>()

  beforeAll(async () => {
    primary = await startReplicationNode()
    mitm = await startReplicationNode()
    backup = await startReplicationNode()
    await connect(mitm, [backup])
    await connect(primary, [mitm])
    forwarder = new RecordingForwarder(mitm, protocols)
    await forwarder.start()
    const logger: ReplicationLogger = {
      info: () => {},
      warn: () => {},
      error: () => {},
      debug: (message, ...args) => { if (message.startsWith('stripe stream from')) closedBecause.push(String(args[1])) }
    }
    host = new ReplicaHost(backup, { protocolPrefix: PREFIX, secretKey: secretKeyOf(backup), primaryTimeoutMs: PRIMARY_TIMEOUT_MS, logger })
    host.on('primaryLost', (replica) => { lostAt.set(replica.vmId, Date.now()) })
    await host.start()
  })

  afterAll(async () => {
    await host?.stop()
    await stopAll([primary, mitm, backup])
  })

  /** A sealed link through the recording forwarder that has had epoch 1 of `vmId` applied and one heartbeat echoed. */
  async function replicatingLink (vmId: string): Promise<{ link: StripeLink, session: RecordedSession, heartbeat: Uint8Array, image: Uint8Array, closed: () => boolean }> {
    let closed = false
    let applied = 0
    const link = await StripeLink.open({
      node: primary,
      secretKey: secretKeyOf(primary),
      protocols,
      route: { backup: backup.peerId.toString(), via: mitm.peerId.toString() },
      windowBytes: 1 << 20,
      maxFrameBytes: 4096,
      onFrame: (self, frame) => {
        if (frame.kind === 'heartbeat') self.echoed(frame.sentAt)
        if (frame.kind === 'stripe-receipt') self.receipt(frame.epoch, frame.stripeIndex)
        if (frame.kind === 'epoch-applied') applied = frame.epoch
      },
      onClose: () => { closed = true }
    })
    const session = forwarder.sessions.at(-1)!
    const image = new Uint8Array(randomBytes(32 * PAGE))
    const encoded = new EpochEncoder({ stripeBytes: 8 * PAGE }).encode(checkpointOf(vmId, image, 1, Array.from({ length: 32 }, (_, i) => i)))
    for (const stripe of encoded.stripes) await link.sendStripe(stripe)
    await waitFor(() => applied === 1, 10_000, 'epoch 1 to be applied')
    const before = session.frames.length
    link.heartbeat(vmId, 1)
    await waitFor(() => link.rttMs != null, 5000, 'the heartbeat echo')
    expect(session.frames.length).toBe(before + 1)
    return { link, session, heartbeat: session.frames[before], image, closed: () => closed }
  }

  it('(a) refuses a recorded heartbeat replayed inside the live session: the link closes and lastHeard does not move', async () => {
    const { session, heartbeat, closed } = await replicatingLink('vm-a')
    const replica = host.replica('vm-a')!
    await new Promise(resolve => setTimeout(resolve, 100))
    const heardBefore = replica.lastHeardAt
    const refusedBefore = closedBecause.length
    session.inject(heartbeat)
    await waitFor(() => closed() && closedBecause.length > refusedBefore, 5000, 'the backup to close the link')
    expect(closedBecause.at(-1)).toMatch(/replayed or duplicated/)
    expect(replica.lastHeardAt).toBe(heardBefore)
    expect(host.status().find(entry => entry.vmId === 'vm-a')!.links).toBe(0)
  })

  it('(a) a replayed heartbeat does not delay the detection of a silent primary', async () => {
    const { session, heartbeat, link } = await replicatingLink('vm-silent')
    const replica = host.replica('vm-silent')!
    const lastGenuine = replica.lastHeardAt
    // The primary falls silent (its link stays open); the forwarder keeps heartbeats coming.
    await new Promise(resolve => setTimeout(resolve, PRIMARY_TIMEOUT_MS / 2))
    session.inject(heartbeat)
    await waitFor(() => lostAt.has('vm-silent'), PRIMARY_TIMEOUT_MS * 4, 'the primary to be declared lost')
    expect(replica.lastHeardAt).toBe(lastGenuine)
    // Declared within the timeout plus one watchdog period (timeout / 4) and scheduling slack.
    expect(lostAt.get('vm-silent')! - lastGenuine).toBeLessThan(PRIMARY_TIMEOUT_MS * 1.25 + 250)
    link.abort(new Error('test done'))
  })

  it('(b) refuses a whole recorded session replayed on a new stream before any stripe is applied', async () => {
    const { link, session } = await replicatingLink('vm-b')
    await link.close()
    await waitFor(() => session.closed, 5000, 'the recorded session to end')
    host.drop('vm-b')
    const applied: string[] = []
    host.on('applied', (epoch) => { applied.push(epoch.vmId) })
    const refusedBefore = closedBecause.length
    const replay = await forwarder.replay(session, backup.peerId.toString())
    await waitFor(replay.closed, 5000, 'the backup to close the replayed stream')
    await waitFor(() => closedBecause.length > refusedBefore, 5000, 'the backup to log why it closed the replay')
    // The backup's new nonce gave the replayed stream other keys: its first sealed frame does not open.
    expect(closedBecause.at(-1)).toMatch(/fails authentication/)
    expect(applied).toEqual([])
    expect(host.replica('vm-b')).toBeUndefined()
  })

  it('(c) refuses two frames swapped in order and applies neither', async () => {
    const { link, session, image, closed } = await replicatingLink('vm-c')
    const replica = host.replica('vm-c')!
    const refusedBefore = closedBecause.length
    image.set(randomBytes(PAGE), 3 * PAGE)
    image.set(randomBytes(PAGE), 20 * PAGE)
    const encoded = new EpochEncoder({ stripeBytes: PAGE }).encode(checkpointOf('vm-c', image, 2, [3, 20]))
    expect(encoded.stripes.length).toBe(2)
    session.swapNext()
    for (const stripe of encoded.stripes) await link.sendStripe(stripe).catch(() => {})
    await waitFor(() => closed() && closedBecause.length > refusedBefore, 5000, 'the backup to close the link')
    expect(closedBecause.at(-1)).toMatch(/reordered or dropped/)
    expect(replica.appliedEpoch).toBe(1)
    expect(replica.stagedBytes).toBe(0)
  })
})
