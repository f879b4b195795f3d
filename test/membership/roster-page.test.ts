// A roster is one page: bounded whatever the network's size, sclerotia first, and repeated
// exchanges walk every member.
import { describe, it, expect } from 'vitest'
import { rosterPage, encodeRoster, decodeRoster, ROSTER_PAGE_PEERS, type RosterEntry } from '../../membership/index.ts'

const entry = (i: number, role: string): RosterEntry => ({ peerId: `p${i}`, addrs: [`/ip4/10.0.${i >> 8}.${i & 255}/tcp/4001`], role })

describe('roster pages', () => {
  it('a small roster is sent whole', () => {
    const all = Array.from({ length: 10 }, (_, i) => entry(i, 'rhizomorph'))
    expect(rosterPage(all, 7).page).toEqual(all)
  })

  it('a large one is cut to a page with every sclerotium first, and successive pages reach every member', () => {
    const all = [...Array.from({ length: 8 }, (_, i) => entry(i, 'sclerotium')), ...Array.from({ length: 500 }, (_, i) => entry(100 + i, 'rhizomorph'))]
    const reached = new Set<string>()
    let cursor = 0
    for (let round = 0; round < 9; round++) {
      const { page, next } = rosterPage(all, cursor)
      expect(page).toHaveLength(ROSTER_PAGE_PEERS)
      expect(page.slice(0, 8).every(e => e.role === 'sclerotium')).toBe(true)
      for (const e of page) reached.add(e.peerId)
      cursor = next
    }
    expect(reached.size).toBe(all.length)
  })

  it('a flood of claimed sclerotia fills at most half a page', () => {
    const all = [...Array.from({ length: 300 }, (_, i) => entry(i, 'sclerotium')), ...Array.from({ length: 100 }, (_, i) => entry(1000 + i, 'rhizomorph'))]
    const { page } = rosterPage(all, 0)
    expect(page.filter(e => e.role === 'sclerotium')).toHaveLength(ROSTER_PAGE_PEERS / 2)
    expect(page).toHaveLength(ROSTER_PAGE_PEERS)
  })

  it('the encoded page is one bounded message', () => {
    const all = Array.from({ length: 1000 }, (_, i) => entry(i, 'rhizomorph'))
    const bytes = encodeRoster({ me: { role: 'sclerotium', addrs: [] }, peers: rosterPage(all, 0).page })
    expect(bytes.length).toBeLessThan(16 * 1024)
    // entries without a certificate chain are dropped by the reader: none here
    expect(decodeRoster(bytes).peers).toHaveLength(0)
  })
})
