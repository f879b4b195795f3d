// The link policy on its own: which members a node keeps links to, by role, how evenly the
// choice spreads, that it does not move without cause, and what a false sclerotium gets.
import { describe, it, expect } from 'vitest'
import {
  chooseLinks, FULL_MESH_MAX_MEMBERS, SCLEROTIA_PER_RHIZOMORPH, ANCHORS_PER_HYPHAE, LINKS_WITHOUT_SCLEROTIA, MAX_SCLEROTIUM_MESH,
  type LinkCandidate
} from '../../membership/index.ts'

const id = (i: number): string => `12D3KooW${String(i).padStart(6, '0')}`

function network (n: number, sclerotia: number, hyphae = 0): LinkCandidate[] {
  return Array.from({ length: n }, (_, i) => ({ peerId: id(i), role: i < sclerotia ? 'sclerotium' : i >= n - hyphae ? 'hyphae' : 'rhizomorph' }))
}

function linksOf (members: LinkCandidate[], i: number, extra: Partial<Parameters<typeof chooseLinks>[0]> = {}): Map<string, string> {
  const self = members[i]
  return chooseLinks({ self: self.peerId, role: self.role, members, ...extra }).keep
}

describe('link policy', () => {
  it(`keeps a full mesh up to ${FULL_MESH_MAX_MEMBERS} members, whatever the roles`, () => {
    const members = network(FULL_MESH_MAX_MEMBERS, 3, 2)
    for (let i = 0; i < members.length; i++) {
      const keep = linksOf(members, i)
      expect(keep.size).toBe(FULL_MESH_MAX_MEMBERS - 1)
      expect([...keep.values()].every(k => k === 'small-network')).toBe(true)
    }
  })

  it('beyond that: sclerotia mesh, rhizomorphs keep 3 sclerotia, hyphae keep 2 anchors, and nothing else', () => {
    const n = 60
    const s = 8
    const members = network(n, s, 10)
    const sclerotia = new Set(members.slice(0, s).map(m => m.peerId))
    for (let i = 0; i < n; i++) {
      const keep = linksOf(members, i)
      const want = i < s ? s - 1 : members[i].role === 'hyphae' ? ANCHORS_PER_HYPHAE : SCLEROTIA_PER_RHIZOMORPH
      expect(keep.size).toBe(want)
      for (const peer of keep.keys()) expect(sclerotia.has(peer)).toBe(true)
      expect(keep.has(members[i].peerId)).toBe(false)
    }
  })

  it('connections per rhizomorph do not grow with N, and the load on sclerotia is even', () => {
    for (const n of [20, 100, 1000]) {
      const s = Math.max(3, Math.round(Math.sqrt(n)))
      const members = network(n, s)
      const load = new Map<string, number>()
      for (let i = s; i < n; i++) {
        const keep = linksOf(members, i)
        expect(keep.size).toBe(SCLEROTIA_PER_RHIZOMORPH)
        for (const peer of keep.keys()) load.set(peer, (load.get(peer) ?? 0) + 1)
      }
      const mean = (n - s) * SCLEROTIA_PER_RHIZOMORPH / s
      // rendezvous hashing: every sclerotium carries its share, none twice its share
      for (const [, count] of load) expect(count).toBeLessThan(mean * 1.6 + 3)
      expect(load.size).toBe(s)
    }
  })

  it('is deterministic, and a new sclerotium moves only the links it takes over', () => {
    const members = network(40, 6)
    const before = Array.from({ length: 40 }, (_, i) => linksOf(members, i))
    // the order the members are listed in does not matter
    expect(linksOf(members, 10)).toEqual(linksOf([...members].reverse(), 29))
    const promoted = members.map((m, i) => i === 6 ? { ...m, role: 'sclerotium' } : m)
    let moved = 0
    for (let i = 7; i < 40; i++) {
      const after = linksOf(promoted, i)
      const lost = [...before[i].keys()].filter(p => !after.has(p))
      // a rhizomorph drops at most one sclerotium, and only for the new one
      expect(lost.length).toBeLessThanOrEqual(1)
      if (lost.length === 1) { expect(after.has(members[6].peerId)).toBe(true); moved++ }
    }
    expect(moved).toBeGreaterThan(0)
    expect(moved).toBeLessThan(33)
  })

  it('a hyphae keeps the anchors it is connected to rather than moving to its first choice', () => {
    const members = network(30, 6, 5)
    const hyphae = 29
    const first = linksOf(members, hyphae)
    const others = members.slice(0, 6).map(m => m.peerId).filter(p => !first.has(p))
    const connected = new Set(others.slice(0, 2))
    const keep = linksOf(members, hyphae, { connected })
    expect([...keep.keys()].sort()).toEqual([...connected].sort())
    expect([...keep.values()]).toEqual(['anchor', 'anchor'])
  })

  it('a role change re-shapes the links', () => {
    const members = network(30, 5)
    expect(linksOf(members, 10).size).toBe(SCLEROTIA_PER_RHIZOMORPH)
    const promoted = members.map((m, i) => i === 10 ? { ...m, role: 'sclerotium' } : m)
    const keep = linksOf(promoted, 10)
    expect(keep.size).toBe(5)
    expect([...keep.values()].every(k => k === 'committee')).toBe(true)
    const demoted = members.map((m, i) => i === 10 ? { ...m, role: 'hyphae' } : m)
    expect(linksOf(demoted, 10).size).toBe(ANCHORS_PER_HYPHAE)
  })

  it('before any sclerotium is known a node keeps a few neighbours; with too few sclerotia others fill in', () => {
    const members = network(20, 0)
    expect(linksOf(members, 3).size).toBe(LINKS_WITHOUT_SCLEROTIA)
    expect([...linksOf(members, 3).values()].every(k => k === 'neighbour')).toBe(true)
    const one = network(20, 1)
    const keep = linksOf(one, 5)
    expect(keep.size).toBe(SCLEROTIA_PER_RHIZOMORPH)
    expect(keep.get(one[0].peerId)).toBe('sclerotium')
  })

  it('a member claiming to be a sclerotium is not chosen over the certified committee', () => {
    const members = network(30, 4)
    const committee = new Set(members.slice(0, 4).map(m => m.peerId))
    // five liars claim the role: without the committee some rhizomorphs would pick them
    const liars = Array.from({ length: 5 }, (_, k) => ({ peerId: id(100 + k), role: 'sclerotium' }))
    const all = [...members, ...liars]
    let pickedLiars = 0
    for (let i = 4; i < 30; i++) {
      const blind = linksOf(all, i)
      pickedLiars += [...blind.keys()].filter(p => !committee.has(p)).length
      const keep = linksOf(all, i, { vouched: (p) => committee.has(p) })
      expect(keep.size).toBe(SCLEROTIA_PER_RHIZOMORPH)
      for (const p of keep.keys()) expect(committee.has(p)).toBe(true)
    }
    expect(pickedLiars).toBeGreaterThan(0)
  })

  it('a flood of claimed sclerotia does not grow a sclerotium\'s links past the committee bound', () => {
    const members = [...network(20, 4), ...Array.from({ length: 500 }, (_, k) => ({ peerId: id(1000 + k), role: 'sclerotium' }))]
    expect(linksOf(members, 0).size).toBe(MAX_SCLEROTIUM_MESH)
    const committee = new Set(members.slice(0, 4).map(m => m.peerId))
    const keep = linksOf(members, 0, { vouched: (p) => committee.has(p) })
    for (const p of members.slice(1, 4)) expect(keep.has(p.peerId)).toBe(true)
    expect(linksOf(members, 10, { vouched: (p) => committee.has(p) }).size).toBe(SCLEROTIA_PER_RHIZOMORPH)
  })

  it('counts each member once and ignores itself among the members', () => {
    const members = network(12, 3)
    const doubled = [...members, ...members, { peerId: members[5].peerId }]
    expect(chooseLinks({ self: members[5].peerId, role: 'rhizomorph', members: doubled }).members).toBe(12)
  })
})
