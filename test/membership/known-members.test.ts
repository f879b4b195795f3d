import { describe, it, expect } from 'vitest'
import { KnownMembers, KNOWN_MEMBERS_MAX, KNOWN_MEMBER_MAX_AGE_MS } from '../../membership/index.ts'

const addr = (i: number): string[] => [`/ip4/10.0.${Math.floor(i / 250)}.${i % 250}/tcp/4001`]

describe('the book of known members', () => {
  it('is capped: the oldest sightings go first', () => {
    const book = new KnownMembers({}, 0)
    for (let i = 0; i < KNOWN_MEMBERS_MAX + 100; i++) book.see(`peer-${i}`, addr(i), 1_000 + i)
    expect(book.size).toBe(KNOWN_MEMBERS_MAX)
    expect(book.get('peer-0')).toBeUndefined()
    expect(book.get(`peer-${KNOWN_MEMBERS_MAX + 99}`)).toBeDefined()
  })

  it('forgets members not seen for a week and members whose certificate expired', () => {
    const book = new KnownMembers({}, 0)
    book.see('old', addr(1), 0)
    book.see('expiring', addr(2), 1_000, 5_000)
    book.see('fresh', addr(3), KNOWN_MEMBER_MAX_AGE_MS)
    expect(book.prune(KNOWN_MEMBER_MAX_AGE_MS + 1)).toBe(2)
    expect(book.entries().map(([id]) => id)).toEqual(['fresh'])
  })

  it('a file that lists more than the cap is cut on load', () => {
    const initial = Object.fromEntries(Array.from({ length: KNOWN_MEMBERS_MAX * 2 }, (_, i) => [`p${i}`, { addrs: addr(i), seenAt: 10 + i }]))
    expect(new KnownMembers(initial, 100).size).toBe(KNOWN_MEMBERS_MAX)
  })

  it('redial rounds reach every member in turn, not only the first few', () => {
    const book = new KnownMembers({}, 0)
    for (let i = 0; i < 50; i++) book.see(`peer-${i}`, addr(i), 1)
    const reached = new Set<string>()
    for (let round = 0; round < 4; round++) for (const [id] of book.nextRound(16, () => true)) reached.add(id)
    expect(reached.size).toBe(50)
    // members the caller does not want (connected, revoked) are skipped, not counted
    expect(book.nextRound(16, (id) => id === 'peer-7').map(([id]) => id)).toEqual(['peer-7'])
  })

  it('a roster flood cannot point a member\'s redials elsewhere: addresses it told itself win over relayed ones', () => {
    const book = new KnownMembers({}, 0)
    book.see('sclerotium', ['/ip4/10.0.0.1/tcp/4001'], 1, { firstHand: true, role: 'sclerotium' })
    for (let i = 0; i < 100; i++) book.see('sclerotium', [`/ip4/6.6.6.${i}/tcp/1`], 2 + i, { role: 'rhizomorph' })
    expect(book.get('sclerotium')?.addrs).toEqual(['/ip4/10.0.0.1/tcp/4001'])
    // the role heard last is kept as a hint (the signed advertisements decide)
    expect(book.get('sclerotium')?.role).toBe('rhizomorph')
    // a member only heard of through rosters takes the relayed addresses
    book.see('other', ['/ip4/10.0.0.2/tcp/4001'], 3)
    book.see('other', ['/ip4/10.0.0.3/tcp/4001'], 4)
    expect(book.get('other')?.addrs).toEqual(['/ip4/10.0.0.3/tcp/4001'])
    // and the member's own word replaces them
    book.see('other', ['/ip4/10.0.0.2/tcp/4001'], 5, { firstHand: true })
    expect(book.get('other')?.addrs).toEqual(['/ip4/10.0.0.2/tcp/4001'])
  })
})
