// Replication of a real guest (the page-writer workload of ram-replication/guest) over real
// libp2p nodes on 127.0.0.1: a primary, four rhizomorphs forwarding sealed links, backups.
// Runs over each engine: the interpreter everywhere, KVM where /dev/kvm opens (otherwise that
// variant is skipped, the reason in its name).
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Libp2p } from 'libp2p'
import {
  PrimaryReplication, ReplicaHost, StripeForwarder, allocateGuestMemory, guestRestorer, startGuest, verifyGuestMemory
} from '../../ram-replication/index.ts'
import type { ReplicatedGuest, RunningGuest } from '../../ram-replication/index.ts'
import { guestEngineVariants, titled } from '../harness/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from './mesh.ts'

const PREFIX = '/mycelium/guest-replication-test'
const MEMORY = 16 * 1024 * 1024
const PRIMARY_TIMEOUT_MS = 700

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

for (const { engine, capability } of guestEngineVariants()) {
  describe.skipIf(capability.missing != null)(titled(`replication of a guest on the ${engine} engine`, capability), () => {
    let primary: Libp2p
    let rhizomorphs: Libp2p[]
    let backups: Libp2p[]
    let hosts: ReplicaHost[]
    const guests: ReplicatedGuest[] = []
    const resumed: Array<{ vmId: string, guest: RunningGuest, at: number }> = []
    const lost: Array<{ vmId: string, at: number, silentMs: number }> = []

    beforeAll(async () => {
      primary = await startReplicationNode()
      rhizomorphs = await Promise.all([0, 1, 2, 3].map(async () => await startReplicationNode()))
      backups = await Promise.all([0, 1, 2].map(async () => await startReplicationNode()))
      for (const rhizomorph of rhizomorphs) await connect(rhizomorph, backups)
      await connect(primary, rhizomorphs)
      for (const rhizomorph of rhizomorphs) await new StripeForwarder(rhizomorph, { protocolPrefix: PREFIX }).start()
      // Backups 0 and 1 hash their memory (to compare: the newest epoch whenever no hash is under
      // way); backup 2 takes over a lost primary.
      hosts = backups.map((node, index) => new ReplicaHost(node, {
        protocolPrefix: PREFIX,
        secretKey: secretKeyOf(node),
        hashMemory: index < 2,
        allocateMemory: allocateGuestMemory,
        restoreGuest: guestRestorer(engine),
        // Long enough that a busy machine's pauses are not taken for a dead primary, short enough to resume within a second.
        primaryTimeoutMs: PRIMARY_TIMEOUT_MS,
        resumeOnPrimaryLoss: index === 2
      }))
      for (const host of hosts) {
        host.on('primaryLost', (replica) => { lost.push({ vmId: replica.vmId, at: Date.now(), silentMs: Date.now() - replica.lastHeardAt }) })
        host.on('resumed', (vmId, guest) => { resumed.push({ vmId, guest: guest as RunningGuest, at: Date.now() }) })
        await host.start()
      }
    })

    afterAll(async () => {
      for (const guest of [...guests, ...resumed.map(entry => entry.guest)]) await guest.stop().catch(() => {})
      for (const host of hosts ?? []) await host.stop()
      await stopAll([primary, ...(rhizomorphs ?? []), ...(backups ?? [])])
    })

    it('keeps two backups equal to the primary at the acknowledged epochs they hash, through the loss of a rhizomorph', async () => {
      const guest = await startGuest(engine, { memoryBytes: MEMORY, workload: { pattern: 'random', dirtyRate: 3000 } })
      guests.push(guest)
      const [a, b] = backups.map(node => node.peerId.toString())
      const replication = new PrimaryReplication({
        node: primary,
        protocolPrefix: PREFIX,
        guest,
        secretKey: secretKeyOf(primary),
        backups: [
          { peerId: a, via: rhizomorphs.map(node => node.peerId.toString()) },
          { peerId: b, via: [rhizomorphs[2], rhizomorphs[3]].map(node => node.peerId.toString()) }
        ],
        epochIntervalMs: 20,
        // The primary hashes guest memory at each checkpoint, with the vCPU paused, to compare.
        verifyEpochs: true
      })
      const primaryHashes = new Map<number, string>()
      const verdicts = { [a]: { equal: 0, different: 0 }, [b]: { equal: 0, different: 0 } }
      replication.on('epoch', (record) => { primaryHashes.set(record.epoch, hex(record.memoryHash!)) })
      replication.on('ack', (ack) => {
        const expected = primaryHashes.get(ack.epoch)
        if (expected == null || ack.memoryHash == null) return
        if (expected === hex(ack.memoryHash)) verdicts[ack.backup].equal++
        else verdicts[ack.backup].different++
      })
      await replication.start()
      await replication.initialSync()
      await waitFor(() => replication.status().backups.every(backup => backup.ackedEpoch >= 12) && verdicts[a].equal >= 12 && verdicts[b].equal >= 12, 30_000, 'a dozen epochs on both backups, a dozen of them hashed')

      const counterBefore = guest.guestCounter()
      await rhizomorphs[1].stop()
      const killedAt = replication.epoch
      const equalBefore = { [a]: verdicts[a].equal, [b]: verdicts[b].equal }
      await waitFor(() => replication.status().backups.every(backup => backup.ackedEpoch >= killedAt + 12) && verdicts[a].equal >= equalBefore[a] + 12 && verdicts[b].equal >= equalBefore[b] + 12,
        30_000, 'a dozen more epochs after the rhizomorph died, a dozen of them hashed')

      const status = replication.status()
      expect(status.backups[0].links.map(link => link.up)).toEqual([true, false, true, true])
      expect(guest.guestCounter()).toBeGreaterThan(counterBefore)
      expect(verdicts[a].different).toBe(0)
      expect(verdicts[b].different).toBe(0)
      expect(verdicts[a].equal).toBeGreaterThanOrEqual(24)
      expect(verdicts[b].equal).toBeGreaterThanOrEqual(24)
      // The guest's own record (stamped pages and running checksum) holds on each backup's copy.
      for (const host of hosts.slice(0, 2)) {
        // between two epochs (a full one is applied over several turns)
        await host.replica(guest.vmId)!.whenIdle()
        const check = verifyGuestMemory(host.replica(guest.vmId)!.memory)
        expect(check.ok).toBe(true)
        expect(check.counter).toBeGreaterThan(0)
      }
      await replication.stop({ release: true })
      await waitFor(() => hosts.every(host => host.replica(guest.vmId) == null), 5000, 'the backups to drop the replicas')
      await guest.stop()
    })

    it('migrates the guest to a backup in two phases and the guest runs on there', async () => {
      const guest = await startGuest(engine, { memoryBytes: MEMORY, workload: { pattern: 'random', dirtyRate: 3000 } })
      guests.push(guest)
      const target = backups[0].peerId.toString()
      const replication = new PrimaryReplication({
        node: primary,
        protocolPrefix: PREFIX,
        guest,
        secretKey: secretKeyOf(primary),
        backups: [{ peerId: target, via: [rhizomorphs[0], rhizomorphs[2], rhizomorphs[3]].map(node => node.peerId.toString()) }],
        epochIntervalMs: 20
      })
      await replication.start()
      await replication.initialSync()
      await waitFor(() => replication.status().backups[0].ackedEpoch >= 5, 30_000, 'replication to settle')
      const phases: string[] = []
      const report = await replication.migrate(target, { convergeBytes: 64 * 1024, onProgress: (progress) => { phases.push(progress.phase) } })
      expect(phases[0]).toBe('converge')
      expect(phases.slice(-2)).toEqual(['stop-and-copy', 'done'])
      expect(report.downtimeMs).toBeGreaterThan(0)
      expect(replication.state).toBe('migrated')
      const moved = resumed.find(entry => entry.vmId === guest.vmId)
      expect(moved).toBeDefined()
      // The guest continues from the migrated state: its counter passes the one it stopped at.
      const counter = await moved!.guest.waitForCounter(report.guestCounter + 200)
      expect(counter).toBeGreaterThan(report.guestCounter)
      await moved!.guest.pause()
      expect(verifyGuestMemory(moved!.guest.memory()).ok).toBe(true)
      await moved!.guest.stop()
    })

    it('resumes the guest on the backup when the primary process is killed, and the counter continues', async () => {
      const script = fileURLToPath(new URL('./primary-process.ts', import.meta.url))
      const config = {
        prefix: PREFIX,
        backup: backups[2].peerId.toString(),
        links: [rhizomorphs[0], rhizomorphs[2]].map(node => ({ peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(addr => addr.toString()) })),
        memoryBytes: MEMORY,
        dirtyRate: 3000,
        engine
      }
      const child: ChildProcess = spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] })
      try {
        let vmId = ''
        let acked = { epoch: 0, guestCounter: 0 }
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const event = JSON.parse(line) as { event: string, vmId?: string, epoch?: number, guestCounter?: number }
          if (event.event === 'started') vmId = event.vmId!
          if (event.event === 'ack') acked = { epoch: event.epoch!, guestCounter: event.guestCounter! }
        })
        await waitFor(() => vmId !== '' && acked.epoch >= 10, 60_000, 'the primary process to replicate ten epochs')
        child.kill('SIGKILL')
        const killedAt = Date.now()
        await waitFor(() => resumed.some(entry => entry.vmId === vmId), 10_000, 'the backup to resume the guest')
        const takeover = resumed.find(entry => entry.vmId === vmId)!
        const replica = hosts[2].status().find(entry => entry.vmId === vmId)!
        expect(replica.state).toBe('resumed')
        // The backup resumes from its last complete epoch: at least what the primary saw acknowledged.
        expect(replica.appliedEpoch).toBeGreaterThanOrEqual(acked.epoch)
        const start = takeover.guest.guestCounter()
        expect(start).toBeGreaterThanOrEqual(acked.guestCounter)
        const counter = await takeover.guest.waitForCounter(start + 200)
        expect(counter).toBeGreaterThan(start)
        await takeover.guest.pause()
        expect(verifyGuestMemory(takeover.guest.memory()).ok).toBe(true)
        const detected = lost.find(entry => entry.vmId === vmId)!
        console.log(`failover: primary declared lost ${detected.at - killedAt} ms after SIGKILL (silent ${detected.silentMs} ms, timeout ${PRIMARY_TIMEOUT_MS} ms), guest resumed ${takeover.at - killedAt} ms after SIGKILL`)
        await takeover.guest.stop()
      } finally {
        if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
      }
    })
  })
}
