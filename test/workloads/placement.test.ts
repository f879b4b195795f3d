// Placement is decided on every node from the same inputs: the same hosts everywhere, spread
// over nodes, moved only for the node that left, and never more than max once hosts are healthy.
import { describe, it, expect } from 'vitest'
import { hostsOf, decide, rankHosts, unfitReason, credibleSightings, rollout, rolloutAction, type PlacementPlan, type PlacementNode, type InstanceSighting } from '../../workloads/placement/index.ts'

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

describe('rolling upgrade', () => {
  const OLD = 'b'.repeat(64)
  const fitting = nodes.filter(n => unfitReason(plan, n) === undefined)

  /**
   * Runs the rollout tick by tick: every node decides from the same view at once (the worst
   * case: nobody waits for anybody), then the actions apply; a new instance started in one tick
   * is healthy in the next, unless `healthyNew` says it never becomes so. Returns the healthy
   * instances after each tick and what runs at the end.
   */
  function roll (p: PlacementPlan, oldOn: string[], pool: PlacementNode[], healthyNew = true, ticks = 30): { serving: number[], final: InstanceSighting[], peak: number } {
    let running: InstanceSighting[] = oldOn.map(peerId => ({ peerId, digest: OLD, health: 'healthy' }))
    const serving: number[] = []
    let peak = running.length
    for (let t = 0; t < ticks; t++) {
      const view = running
      const r = rollout(p, pool, view)
      const next: InstanceSighting[] = []
      for (const node of pool) {
        const mine = view.find(s => s.peerId === node.peerId)
        const { action } = r === undefined ? { action: decide(p, pool, node.peerId, view.filter(s => s.peerId !== node.peerId), mine !== undefined).action } : rolloutAction(r, node.peerId, mine, p.digest)
        if (action === 'start' || action === 'replace') next.push({ peerId: node.peerId, digest: p.digest, health: 'starting' })
        else if (mine !== undefined && action !== 'stop') next.push(mine.digest === p.digest && mine.health === 'starting' && healthyNew ? { ...mine, health: 'healthy' } : mine.digest === p.digest && !healthyNew ? { ...mine, health: 'unhealthy' } : mine)
      }
      running = next
      peak = Math.max(peak, running.length)
      serving.push(running.filter(s => s.health === 'healthy').length)
    }
    return { serving, final: running, peak }
  }

  it('starts the new bundle before old instances stop, one at a time, and never serves fewer than min', () => {
    const p: PlacementPlan = { ...plan, digest: 'c'.repeat(64), min: 3, max: 4, from: [OLD] }
    // old instances where the old bundle ranked them
    const oldHosts = hostsOf({ ...p, digest: OLD }, fitting, [])
    const { serving, final, peak } = roll(p, oldHosts, fitting)
    expect(Math.min(...serving)).toBeGreaterThanOrEqual(3)
    expect(final.map(s => s.digest)).toEqual(final.map(() => p.digest))
    expect(final.map(s => s.peerId).sort()).toEqual(hostsOf(p, fitting, final).sort())
    expect(peak).toBeLessThanOrEqual(4)
  })

  it('when every fitting node runs an old instance it starts one extra new instance on a free node first', () => {
    const p: PlacementPlan = { ...plan, digest: 'c'.repeat(64), min: 2, max: 2, from: [OLD] }
    const three = rankHosts(p, fitting).slice(0, 3)
    const hosts = hostsOf(p, three, [])
    const { serving, final, peak } = roll(p, hosts, three)
    expect(Math.min(...serving)).toBeGreaterThanOrEqual(2)
    expect(peak).toBe(3)
    expect(final.map(s => s.peerId).sort()).toEqual([...hosts].sort())
    expect(final.every(s => s.digest === p.digest && s.health === 'healthy')).toBe(true)
    // with no free node the hosts replace in place, one at a time: min - 1 at worst
    const two = roll(p, hosts, fitting.filter(n => hosts.includes(n.peerId)))
    expect(Math.min(...two.serving)).toBe(1)
    expect(two.final.every(s => s.digest === p.digest && s.health === 'healthy')).toBe(true)
  })

  it('a host does not replace its old instance short of min while an old instance off the hosts may still stop and free its node', () => {
    const p: PlacementPlan = { ...plan, digest: 'c'.repeat(64), min: 2, max: 3, from: [OLD] }
    // three nodes: the new hosts are the first two; old instances on the second and the third
    const three = rankHosts(p, fitting).slice(0, 3)
    const ids = three.map(n => n.peerId)
    const { serving, final, peak } = roll(p, [ids[1], ids[2]], three)
    expect(Math.min(...serving)).toBeGreaterThanOrEqual(2)
    expect(peak).toBeLessThanOrEqual(3)
    expect(final.map(s => s.peerId).sort()).toEqual([ids[0], ids[1]].sort())
    expect(final.every(s => s.digest === p.digest && s.health === 'healthy')).toBe(true)
  })

  it('a new bundle that never becomes healthy halts the rollout with the old instances serving', () => {
    const p: PlacementPlan = { ...plan, digest: 'c'.repeat(64), min: 2, max: 3, from: [OLD] }
    const oldHosts = hostsOf({ ...p, digest: OLD }, fitting, [])
    const { serving, final } = roll(p, oldHosts, fitting, false)
    expect(Math.min(...serving)).toBe(2)
    expect(final.filter(s => s.digest === OLD && s.health === 'healthy').map(s => s.peerId).sort()).toEqual([...oldHosts].sort())
    // one new instance was tried, and the rollout waits on it
    expect(final.filter(s => s.digest === p.digest)).toHaveLength(1)
    expect(rollout(p, fitting, final)?.waitingFor?.health).toBe('unhealthy')
  })

  it('of two old instances that could each stop, only one does when min needs the other', () => {
    const p: PlacementPlan = { ...plan, digest: 'c'.repeat(64), min: 2, max: 3, from: [OLD] }
    const ranked = rankHosts(p, fitting).map(n => n.peerId)
    const hosts = hostsOf(p, fitting, [])
    const others = ranked.filter(id => !hosts.includes(id)).slice(0, 2)
    const view: InstanceSighting[] = [{ peerId: hosts[0], digest: p.digest, health: 'healthy' }, ...others.map(peerId => ({ peerId, digest: OLD, health: 'healthy' as const }))]
    const r = rollout(p, fitting, view)!
    expect(others.filter(id => rolloutAction(r, id, view.find(s => s.peerId === id), p.digest).action === 'stop')).toHaveLength(1)
  })

  it('believes an old instance only where the old bundle ranked it, and only for a bundle the plan rolls from', () => {
    const p: PlacementPlan = { ...plan, digest: 'c'.repeat(64), min: 1, max: 1 }
    const oldRank = rankHosts({ ...p, digest: OLD }, nodes).map(n => n.peerId)
    const newRank = rankHosts(p, nodes).map(n => n.peerId)
    const oldOnly = oldRank.find(id => newRank.indexOf(id) > 1 && oldRank.indexOf(id) <= 1)!
    const seen: InstanceSighting[] = [{ peerId: oldOnly, digest: OLD, health: 'healthy' }]
    expect(credibleSightings(p, nodes, seen, nodes)).toEqual([])
    expect(credibleSightings({ ...p, from: [OLD] }, nodes, seen, nodes)).toEqual(seen)
  })
})
