// RAM replication bench: `npm run bench:ram`.
//
// 1. Link scaling: the same stripes sent to a backup through 1, 2 and 4 rhizomorph forwarders.
//    As root, the bench re-runs itself inside a fresh network namespace and shapes the traffic
//    to each rhizomorph with its own tc tbf (same rate for all), so the figure shows how links
//    add up; without root it runs unshaped on loopback, where all nodes share this process's
//    CPU and the figure shows the cost of the path rather than the scaling.
// 2. A real guest on every engine this machine has (ram-guest.ts): replication and migration
//    figures per write pattern and rate, in two tables.
// 3. Failover by lease (ram-failover.ts): crash of the primary to the guest running on one backup.
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { availableParallelism, loadavg } from 'node:os'
import type { Libp2p } from 'libp2p'
import {
  BackupSession, EpochEncoder, ReplicaHost, StripeForwarder, replicationProtocols, silentLogger
} from '../../ram-replication/index.ts'
import type { Checkpoint } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll, waitFor } from '../ram-replication/mesh.ts'
import { guestTables } from './ram-guest.ts'
import { failoverTable } from './ram-failover.ts'

const PREFIX = '/mycelium/bench'
const PAGE = 4096
const LINK_RATE_MBIT = Number(process.env.RAM_BENCH_LINK_MBIT ?? 16)
const FORWARDER_PORTS = [41001, 41002, 41003, 41004]
const INSIDE = process.argv.includes('--inside-netns')

function sh (args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Run this file again inside a new network namespace; returns false when that cannot be done. */
function rerunInNamespace (): boolean {
  if (INSIDE || process.getuid?.() !== 0 || process.env.RAM_BENCH_UNSHAPED === '1') return false
  const namespace = `ramb${randomBytes(3).toString('hex')}`
  try {
    sh(['ip', 'netns', 'add', namespace])
  } catch {
    return false
  }
  try {
    const result = spawnSync('ip', ['netns', 'exec', namespace, process.execPath, fileURLToPath(import.meta.url), '--inside-netns'], { stdio: 'inherit' })
    process.exitCode = result.status ?? 1
  } finally {
    try { sh(['ip', 'netns', 'del', namespace]) } catch {}
  }
  return true
}

/**
 * In the bench's own namespace: lo up, and each forwarder's port behind its own token bucket
 * (htb only classifies: the class rates are far above the tbf rate, which does the shaping).
 */
function shapeForwarders (): void {
  sh(['ip', 'link', 'set', 'lo', 'up'])
  sh(['tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '1'])
  sh(['tc', 'class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '40gbit', 'quantum', '65536'])
  FORWARDER_PORTS.forEach((port, index) => {
    const band = index + 2
    sh(['tc', 'class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', `1:${band}`, 'htb', 'rate', '40gbit', 'quantum', '65536'])
    sh(['tc', 'qdisc', 'add', 'dev', 'lo', 'parent', `1:${band}`, 'handle', `${band}0:`, 'tbf', 'rate', `${LINK_RATE_MBIT}mbit`, 'burst', '256kb', 'latency', '200ms'])
    sh(['tc', 'filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', `1:${band}`])
  })
}

function syntheticEpoch (vmId: string, epoch: number, image: Uint8Array): Checkpoint {
  return {
    vmId,
    epoch,
    full: epoch === 1,
    memoryBytes: image.length,
    pageSize: PAGE,
    pages: Array.from({ length: image.length / PAGE }, (_, index) => ({ index, data: image.subarray(index * PAGE, (index + 1) * PAGE) })),
    vcpu: { regs: new Uint8Array(144), sregs: new Uint8Array(312) },
    guestCounter: epoch,
    takenAt: Date.now()
  }
}

async function linkScaling (shaped: boolean): Promise<void> {
  const primary = await startReplicationNode()
  const rhizomorphs: Libp2p[] = []
  for (const port of FORWARDER_PORTS) rhizomorphs.push(await startReplicationNode(shaped ? port : 0))
  const backup = await startReplicationNode()
  try {
    for (const node of rhizomorphs) await connect(node, [backup])
    await connect(primary, rhizomorphs)
    for (const node of rhizomorphs) await new StripeForwarder(node, { protocolPrefix: PREFIX }).start()
    const host = new ReplicaHost(backup, { protocolPrefix: PREFIX, secretKey: secretKeyOf(backup) })
    await host.start()
    console.log(shaped
      ? `link scaling (links sealed end to end): in-process nodes in a private network namespace, each rhizomorph's inbound traffic shaped by tc tbf to ${LINK_RATE_MBIT} Mbit/s`
      : 'link scaling (links sealed end to end): in-process nodes on loopback, NOT rate-shaped (all nodes share this process\'s CPU: the figure is the path\'s cost, not link scaling)')
    const results: number[] = []
    for (const links of [1, 2, 4]) {
      const vmId = `bench-${links}`
      // Enough data for about two seconds at the shaped rate.
      const bytes = shaped ? Math.ceil(links * LINK_RATE_MBIT * 125_000 * 2 / (1 << 20)) * (1 << 20) : 64 << 20
      const image = new Uint8Array(randomBytes(bytes))
      let acked = 0
      const session = new BackupSession({
        node: primary,
        protocols: replicationProtocols(PREFIX),
        vmId,
        backup: backup.peerId.toString(),
        routes: rhizomorphs.slice(0, links).map(node => ({ backup: backup.peerId.toString(), via: node.peerId.toString() })),
        windowBytes: 1 << 20,
        secretKey: secretKeyOf(primary),
        logger: silentLogger,
        onAck: (ack) => { acked = ack.epoch },
        onResumed: () => {},
        onMismatch: () => { throw new Error('backup diverged') }
      })
      await session.open()
      const encoded = new EpochEncoder({ stripeBytes: 128 * 1024 }).encode(syntheticEpoch(vmId, 1, image))
      const started = performance.now()
      session.enqueue(encoded)
      await waitFor(() => acked === 1, 120_000, `epoch of ${links} links`)
      const seconds = (performance.now() - started) / 1000
      const rate = encoded.bytes / seconds
      results.push(rate)
      console.log(`  ${links} link${links > 1 ? 's' : ' '}: ${(encoded.bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${(rate / 1e6).toFixed(2)} MB/s (${(rate / results[0]).toFixed(2)}x one link)`)
      await session.close()
      host.drop(vmId)
    }
    await host.stop()
  } finally {
    await stopAll([primary, ...rhizomorphs, backup])
  }
}

async function main (): Promise<void> {
  if (!INSIDE) console.log(`load average ${loadavg().map(load => load.toFixed(1)).join(' ')} on ${availableParallelism()} cores (figures are CPU-bound when the machine is busy)`)
  if (rerunInNamespace()) return
  let shaped = false
  if (INSIDE) {
    shapeForwarders()
    shaped = true
  }
  await linkScaling(shaped)
  await guestTables()
  await failoverTable()
}

await main()
