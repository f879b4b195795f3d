// Proposals carry what changed since the previous epoch, so their size follows an epoch's
// churn and not the size of the primary spore: a primary of 5,000 entries from 100 origins
// keeps being certified, and a proposal that removes what the previous epoch does not hold is
// refused.
import { describe, it, expect } from 'vitest'
import { toHex, sha256, encodeCanonical, randomSecretKey } from '../../crypto/index.ts'
import { signEntry, signerOf, type SignedEntry } from '../../spores/index.ts'
import { encodeEpochProposal, decodeEpochProposal, MAX_MESSAGE_BYTES, EpochProposalError } from '../../consensus/index.ts'
import { startCluster, until, latestEpoch } from './consensus-cluster.ts'

const origins = Array.from({ length: 100 }, () => signerOf(randomSecretKey()))
const now = Date.now()
const primary: SignedEntry[] = origins.flatMap((o, i) => Array.from({ length: 50 }, (_, k) =>
  signEntry(o, { type: 'service', key: `${o.peerId}/svc${k}`, value: { name: `svc${k}`, endpoints: [`/ip4/10.${i}.${k}.1/tcp/8080`, `/ip4/10.${i}.${k}.2/tcp/8080`], protocol: 'http' }, seq: 1, issuedAt: now })))

describe('epoch proposals as changes', () => {
  const base = { epoch: 7, digest: sha256(new Uint8Array([7])), issuedAt: now, entries: primary.map(e => e.bytes) }

  it('carry only what changed, and rebuild the same body', () => {
    const changed = signEntry(origins[3], { type: 'service', key: `${origins[3].peerId}/svc0`, value: { name: 'svc0', endpoints: ['/ip4/10.99.0.1/tcp/80'] }, seq: 2, issuedAt: now + 1 })
    const entries = [...primary.filter(e => e.key !== changed.key).map(e => e.bytes), changed.bytes]
    const body = { epoch: 8, prev: base.digest, issuedAt: now + 10, entries, candidates: ['a', 'b'] }
    const input = encodeEpochProposal(body, base)
    const whole = encodeCanonical(body)
    // 5,000 entries of about 300 bytes: the whole body would not fit a proposal, the change is tiny
    expect(whole.length).toBeGreaterThan(MAX_MESSAGE_BYTES)
    expect(input.length).toBeLessThan(2048)
    const back = decodeEpochProposal(input, base)
    expect(new Set(back.entries.map(e => toHex(e)))).toEqual(new Set(entries.map(e => toHex(e))))
    expect(back).toMatchObject({ epoch: 8, issuedAt: now + 10, candidates: ['a', 'b'] })
  })

  it('refuse a change that removes what the previous epoch does not hold, or removes twice', () => {
    // removes entry 0, against a previous epoch that never held it
    const other = { ...base, digest: sha256(new Uint8Array([9])), entries: base.entries.slice(1) }
    const input = encodeEpochProposal({ epoch: 8, prev: other.digest, issuedAt: now + 10, entries: primary.slice(1).map(e => e.bytes), candidates: ['a'] }, base)
    expect(() => decodeEpochProposal(input, other)).toThrow(/does not hold/)
    expect(() => decodeEpochProposal(input, base)).toThrow(/does not extend/)
    const h0 = sha256(base.entries[0])
    const twice = encodeCanonical({ epoch: 8, prev: base.digest, issuedAt: now + 10, added: [], removed: [h0, h0], candidates: ['a'] })
    expect(() => decodeEpochProposal(twice, base)).toThrow(/twice/)
    const garbage = encodeCanonical({ epoch: 8, prev: base.digest, issuedAt: now + 10, added: [], removed: [new Uint8Array(5)], candidates: ['a'] })
    expect(() => decodeEpochProposal(garbage, base)).toThrow(/sha256/)
    // a named error (it was a bare TypeError), still a TypeError for older callers
    expect(() => decodeEpochProposal(twice, base)).toThrow(EpochProposalError)
    expect(() => decodeEpochProposal(encodeCanonical([1, 2]), base)).toThrow(TypeError)
  })
})

describe('a primary spore of 5,000 entries from 100 origins', () => {
  it('keeps being certified: proposals carry the change, every member rebuilds and checks the whole', async () => {
    const cluster = await startCluster({ size: 4, f: 1, intervalMs: 400, genesisEntries: primary })
    try {
      await until('two epochs everywhere', () => cluster.nodes.every(n => latestEpoch(n) >= 2), 120_000)
      for (const n of cluster.nodes) {
        const e3 = n.consensus.epochs.chain.get(2)!
        // carried forward whole: the 5,000 plus the members' own node and health entries
        expect(e3.entries!.length).toBeGreaterThanOrEqual(5000)
      }
      expect(new Set(cluster.nodes.map(n => toHex(n.consensus.epochs.chain.get(2)!.digest))).size).toBe(1)
      await until('the primary tiers hold them', async () => (await cluster.nodes[0].spores.ls({ tier: 'primary', type: 'service' })).length === 5000, 30_000)
    } finally {
      await cluster.close()
    }
  }, 180_000)
})
