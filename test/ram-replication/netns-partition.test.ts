// At most one running copy of a VM across a real partition: three daemons, each in its own
// network namespace (test/harness/netns.ts), a VM on the interpreted engine (every machine) with
// its primary and two backups (three voters). The primary's link is taken down while its guest
// runs. Each daemon's view of the VM is sampled over its admin socket every few ms: the old
// primary's guest must have made its last progress before the winning backup's guest could have
// made its first (the two hosts' progress never overlaps in time), exactly one backup resumes,
// and after the heal the old primary learns the newer term, stands down and never runs again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, capabilities, sleep, titled, waitFor, type TestNode } from '../harness/index.ts'
import type { VmStatus } from '../../node/cli/commands/vm.ts'
import { VmProgressLog } from './vm-progress.ts'

const { netns } = capabilities()

async function vmStatus (node: TestNode, vmId: string): Promise<VmStatus> {
  return await node.api<VmStatus>(`/vm/status?vmId=${encodeURIComponent(vmId)}`)
}

describe.skipIf(netns.missing !== undefined)(titled('a VM whose primary is cut off by the network (daemons in network namespaces)', netns), () => {
  let cluster: Cluster
  let nodes: TestNode[]
  const logs: VmProgressLog[] = []

  beforeAll(async () => {
    cluster = new Cluster({ netns: true, node: () => ({ env: { MYCELIUM_LOG_LEVEL: 'info' } }) })
    nodes = await cluster.startNetwork(3)
    await cluster.waitForFullMesh(30_000)
  }, 90_000)
  afterAll(async () => {
    await Promise.all(logs.map(async log => { await log.stop() }))
    await cluster?.destroy()
  })

  it('the cut primary stops its vCPU before exactly one backup resumes, and stands down after the heal', async () => {
    const [primary, ...backups] = nodes
    const run = await primary.cliJson<{ vmId: string }>(['vm', 'run', '--engine', 'interpreted', '--memory-mb', '16', '--backups', '2', '--links', '1', '--dirty-rate', '2000'])
    const vmId = run.vmId
    const replicated = await waitFor(async () => {
      const s = await vmStatus(primary, vmId)
      return s.backups.length === 2 && s.backups.every(b => b.ackedEpoch >= 5) ? s : undefined
    }, { timeoutMs: 20_000, what: 'both backups past epoch 5' })
    expect(replicated.lease?.voters.sort()).toEqual([primary, ...backups].map(n => n.peerId).sort())
    const [primaryLog, ...backupLogs] = nodes.map(node => new VmProgressLog(node, vmId))
    logs.push(primaryLog, ...backupLogs)
    await sleep(300)

    const cutAt = performance.now()
    cluster.lab!.cut(primary.options.host!)
    await waitFor(() => backupLogs.some(log => log.ranHere()), { timeoutMs: 10_000, intervalMs: 20, what: 'a backup running the guest' })
    // time for a second backup to resume, were it going to
    await sleep(1500)
    const winners = backupLogs.filter(log => log.ranHere())
    expect(winners, 'backups that resumed the guest').toHaveLength(1)
    const [winner] = winners
    const stoppedBy = primaryLog.lastProgressBy()!
    const startedAfter = winner.startedAfter()!
    console.log(`partition: old primary's last progress ≤ ${Math.round(stoppedBy - cutAt)} ms after the cut, the backup's guest started ≥ ${Math.round(startedAfter - cutAt)} ms after it`)
    // the old primary's guest made progress up to the cut, and not once the backup's could have started
    expect(stoppedBy).toBeGreaterThan(cutAt - 100)
    expect(stoppedBy).toBeLessThan(startedAfter)
    // it stopped because its lease was ending (the fence), not because anything killed it
    expect(primaryLog.samples.some(s => s.fenced === true && s.answeredAt < startedAfter + 50)).toBe(true)
    const taken = await vmStatus(winner.node, vmId)
    expect(taken).toMatchObject({ role: 'primary', engine: 'interpreted', takenOver: { how: 'failover', from: primary.peerId } })
    expect(taken.lease?.holds).toBe(true)

    const healAt = performance.now()
    cluster.lab!.heal(primary.options.host!)
    // the old primary learns the newer term from a voter and stops its guest for good
    await waitFor(async () => (await primary.cliJson<Array<{ vmId: string }>>(['vm', 'ls'])).every(vm => vm.vmId !== vmId), { timeoutMs: 25_000, intervalMs: 250, what: 'the old primary standing down' })
    console.log(`heal → old primary stood down in ${Math.round(performance.now() - healAt)} ms`)
    const counterThen = (await vmStatus(winner.node, vmId)).guestCounter
    await sleep(1000)
    await Promise.all(logs.map(async log => { await log.stop() }))

    // the old primary's guest never ran again after it stopped: no counter change after stoppedBy
    const afterStop = primaryLog.since(stoppedBy).filter(s => s.guestCounter !== undefined)
    expect(new Set(afterStop.map(s => s.guestCounter)).size).toBeLessThanOrEqual(1)
    expect(primaryLog.samples.at(-1)?.role).toBeUndefined()
    // the winner runs on, and is still the only backup that ever ran the guest
    expect((await vmStatus(winner.node, vmId)).guestCounter).toBeGreaterThan(counterThen)
    expect(backupLogs.filter(log => log.ranHere())).toEqual([winner])
  }, 60_000)
})
