// Placement is decided on every node from the same inputs: the same hosts everywhere, spread
// over nodes, moved only for the node that left, and never more than max once hosts are healthy.
import { describe, it, expect } from 'vitest'
import { hostsOf, decide, rankHosts, unfitReason, credibleSightings, type PlacementPlan, type PlacementNode, type InstanceSighting } from '../../workloads/placement/index.ts'

const plan: PlacementPlan = { name: 'web', digest: 'a'.repeat(64), min: 2, max: 3, kind: 'service' }
const nodes: PlacementNode[] = Array.from({ length: 10 }, (_, i) => ({ peerId: `12D3KooPeer${i}`, role: i < 3 ? 'sclerotium' : i < 8 ? 'rhizomorph' : 'hyphae', arch: i % 4 === 0 ? 'arm64' : 'x64', memoryMiB: 1024 * (i + 1) }))

describe('placement', () => {
  it('gives every node the same hosts whatever order it lists the nodes in', () => {
    const a = hostsOf(plan, nodes, [])
    const b = hostsOf(plan, [...nodes].reverse(), [])
    expect(a).toHaveLength(2)
    expect(b).toEqual(a)
  })

  it('never places on a hyphae, a node of another architecture, or one with too little memory', () => {
    const p: PlacementPlan = { ...plan, min: 10, max: 10, arch: ['x86_64'], memoryMb: 3000 }
    const hosts = hostsOf(p, nodes, [])
    for (const id of hosts) {
      const n = nodes.find(x => x.peerId === id)!
      expect(n.role).not.toBe('hyphae')
      expect(n.arch).toBe('x64')
      expect(n.memoryMiB).toBeGreaterThanOrEqual(3000)
    }
    expect(unfitReason(p, nodes[9])).toMatch(/hyphae/)
    expect(unfitReason(p, nodes[4])).toMatch(/arm64/)
    expect(unfitReason(p, nodes[1])).toMatch(/memory/)
    expect(hosts.length).toBe(nodes.filter(n => unfitReason(p, n) === undefined).length)
  })

  it('moves only the instance of a node that left', () => {
    const before = hostsOf(plan, nodes, [])
    const gone = before[0]
    const after = hostsOf(plan, nodes.filter(n => n.peerId !== gone), [])
    expect(after).toContain(before[1])
    expect(after).not.toContain(gone)
  })

  it('spreads applications over hosts', () => {
    const firsts = new Set<string>()
    for (let i = 0; i < 40; i++) firsts.add(hostsOf({ ...plan, name: `app-${i}`, min: 1 }, nodes, [])[0])
    expect(firsts.size).toBeGreaterThan(3)
  })

  it('a node that is no host any more keeps its instance until the hosts are healthy, then stops', () => {
    const hosts = hostsOf(plan, nodes, [])
    const former = rankHosts(plan, nodes).map(n => n.peerId).find(id => !hosts.includes(id))!
    const starting: InstanceSighting[] = hosts.map(peerId => ({ peerId, digest: plan.digest, health: 'starting' }))
    expect(decide(plan, nodes, former, starting, true).action).toBe('keep')
    const healthy: InstanceSighting[] = hosts.map(peerId => ({ peerId, digest: plan.digest, health: 'healthy' }))
    expect(decide(plan, nodes, former, healthy, true).action).toBe('stop')
    // healthy instances of an older bundle are no handover
    const old: InstanceSighting[] = hosts.map(peerId => ({ peerId, digest: 'b'.repeat(64), health: 'healthy' }))
    expect(decide(plan, nodes, former, old, true).action).toBe('keep')
    expect(decide(plan, nodes, hosts[0], [], false).action).toBe('start')
    expect(decide(plan, nodes, former, [], false).action).toBe('none')
  })

  it('a surplus over max stops at once', () => {
    const p = { ...plan, min: 1, max: 1 }
    const host = hostsOf(p, nodes, [])[0]
    const other = nodes.find(n => n.peerId !== host && unfitReason(p, n) === undefined)!.peerId
    expect(decide(p, nodes, other, [{ peerId: host, digest: p.digest, health: 'starting' }], true).action).toBe('stop')
  })

  it('a job runs once, on one node, and not again once done', () => {
    const job: PlacementPlan = { ...plan, kind: 'job', min: 3, max: 3 }
    expect(hostsOf(job, nodes, [])).toHaveLength(1)
    expect(hostsOf(job, nodes, [{ peerId: nodes[0].peerId, digest: job.digest, health: 'done' }])).toEqual([])
  })

  it('a removed plan (max 0) wants nothing and stops what runs', () => {
    const removed = { ...plan, min: 0, max: 0 }
    expect(hostsOf(removed, nodes, [])).toEqual([])
    expect(decide(removed, nodes, nodes[0].peerId, [], true).action).toBe('stop')
  })
})

describe('which reported instances placement believes', () => {
  it('a member that does not fit, or ranks far below the hosts, cannot draw traffic or end a job', () => {
    const p: PlacementPlan = { ...plan, min: 1, max: 1 }
    const ranked = rankHosts(p, nodes).map(n => n.peerId)
    const hyphae = nodes.find(n => n.role === 'hyphae')!.peerId
    const far = ranked.at(-1)!
    const reported: InstanceSighting[] = [
      { peerId: ranked[0], digest: p.digest, health: 'healthy' },
      { peerId: ranked[1], digest: p.digest, health: 'healthy' },
      { peerId: far, digest: p.digest, health: 'healthy' },
      { peerId: hyphae, digest: p.digest, health: 'healthy' }
    ]
    expect(credibleSightings(p, nodes, reported, nodes).map(s => s.peerId)).toEqual([ranked[0], ranked[1]])
    const job: PlacementPlan = { ...p, kind: 'job' }
    const left = nodes.filter(n => n.peerId !== ranked[0])
    // the node that ran the job has left: its result still counts; a hyphae's claim does not
    const done: InstanceSighting[] = [{ peerId: ranked[0], digest: p.digest, health: 'done' }, { peerId: hyphae, digest: p.digest, health: 'done' }]
    expect(credibleSightings(job, left, done, nodes).map(s => s.peerId)).toEqual([ranked[0]])
  })
})

describe('labels', () => {
  it('places only on nodes that carry every label the plan asks for', () => {
    const labelled = nodes.map((n, i) => ({ ...n, labels: { zone: i % 3 === 0 ? 'garage' : 'attic', gpu: i === 3 } }))
    const p: PlacementPlan = { ...plan, min: 10, max: 10, labels: { zone: 'garage' } }
    const hosts = hostsOf(p, labelled, [])
    expect(hosts.length).toBeGreaterThan(0)
    for (const id of hosts) expect(labelled.find(n => n.peerId === id)!.labels.zone).toBe('garage')
    expect(unfitReason(p, labelled[1])).toMatch(/label zone=garage/)
    expect(unfitReason(p, nodes[0])).toMatch(/label zone=garage/)
  })
})
