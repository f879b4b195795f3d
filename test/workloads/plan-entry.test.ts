// Who may write an application's plan: the network root, or an operator carrying a root-signed
// grant, and then only until the grant runs out, whatever issuedAt the entry claims.
import { describe, it, expect } from 'vitest'
import { signEntry, signerOf, mayWrite, ownerOf, checkEntry, DEFAULT_LIMITS, SchemaError } from '../../spores/index.ts'
import { randomSecretKey } from '../../crypto/index.ts'
import { signOperatorGrant, encodeOperatorGrant, operatorGrantToken, decodeOperatorGrantToken, InvalidOperatorGrantError } from '../../membership/index.ts'

const rootKey = randomSecretKey()
const root = signerOf(rootKey)
const operator = signerOf(randomSecretKey())
const stranger = signerOf(randomSecretKey())
const otherRoot = randomSecretKey()
const NOW = Date.now()
const HOUR = 3600_000
const authority = { rootPeerId: root.peerId, committee: () => new Set<string>() }
const digest = 'ab'.repeat(32)
const value = { digest, min: 1, max: 2, kind: 'service' as const }

function grantFor (peerId: string, key = rootKey, issuedAt = NOW - HOUR, ttlMs = 2 * HOUR): Uint8Array {
  return encodeOperatorGrant(signOperatorGrant(key, { operator: peerId, issuedAt, ttlMs }))
}

describe('plan entries', () => {
  it('the root writes plans; a member without a grant does not', () => {
    expect(mayWrite(signEntry(root, { type: 'plan', key: 'web', value, seq: 1, issuedAt: NOW }), authority)).toBe(true)
    expect(mayWrite(signEntry(stranger, { type: 'plan', key: 'web', value, seq: 1, issuedAt: NOW }), authority)).toBe(false)
    expect(ownerOf({ type: 'plan', key: 'web' })).toBeUndefined()
  })

  it('an operator with a grant writes plans that expire with the grant', () => {
    const grant = grantFor(operator.peerId)
    const ok = signEntry(operator, { type: 'plan', key: 'web', value: { ...value, grant }, seq: 1, issuedAt: NOW, expiresAt: NOW + HOUR })
    expect(mayWrite(ok, authority)).toBe(true)
    expect(checkEntry(ok.bytes, NOW, { trust: authority, limits: DEFAULT_LIMITS }).ok).toBe(true)
    // an entry that would outlive the grant, or that has no expiry at all
    expect(mayWrite(signEntry(operator, { type: 'plan', key: 'web', value: { ...value, grant }, seq: 1, issuedAt: NOW, expiresAt: NOW + 2 * HOUR }), authority)).toBe(false)
    expect(mayWrite(signEntry(operator, { type: 'plan', key: 'web', value: { ...value, grant }, seq: 1, issuedAt: NOW }), authority)).toBe(false)
  })

  it('refuses a grant for someone else, from another root, expired, or backdated before it', () => {
    const cases = [
      grantFor(stranger.peerId),
      grantFor(operator.peerId, otherRoot),
      grantFor(operator.peerId, rootKey, NOW - 3 * HOUR, HOUR)
    ]
    for (const grant of cases) {
      expect(mayWrite(signEntry(operator, { type: 'plan', key: 'web', value: { ...value, grant }, seq: 1, issuedAt: NOW, expiresAt: NOW + 60_000 }), authority)).toBe(false)
    }
    const later = grantFor(operator.peerId, rootKey, NOW + HOUR, HOUR)
    expect(mayWrite(signEntry(operator, { type: 'plan', key: 'web', value: { ...value, grant: later }, seq: 1, issuedAt: NOW - HOUR, expiresAt: NOW }), authority)).toBe(false)
    // a flipped byte of a good grant
    const bad = grantFor(operator.peerId)
    bad[bad.length - 3] ^= 1
    expect(mayWrite(signEntry(operator, { type: 'plan', key: 'web', value: { ...value, grant: bad }, seq: 1, issuedAt: NOW, expiresAt: NOW + 60_000 }), authority)).toBe(false)
  })

  it('a plan names an application, and min is never above max', () => {
    expect(mayWrite(signEntry(root, { type: 'plan', key: 'Web/../x', value, seq: 1, issuedAt: NOW }), authority)).toBe(false)
    expect(() => signEntry(root, { type: 'plan', key: 'web', value: { ...value, min: 3, max: 2 }, seq: 1, issuedAt: NOW })).toThrow(SchemaError)
  })

  it('a bundle holder record is written only by the holder, for the digest it names', () => {
    const v = { digest, name: 'web', size: 10 }
    expect(mayWrite(signEntry(operator, { type: 'bundle', key: `${operator.peerId}/${digest}`, value: v, seq: 1, issuedAt: NOW }), authority)).toBe(true)
    expect(mayWrite(signEntry(operator, { type: 'bundle', key: `${stranger.peerId}/${digest}`, value: v, seq: 1, issuedAt: NOW }), authority)).toBe(false)
    expect(mayWrite(signEntry(operator, { type: 'bundle', key: `${operator.peerId}/${'cd'.repeat(32)}`, value: v, seq: 1, issuedAt: NOW }), authority)).toBe(false)
  })

  it('grant tokens round-trip and refuse garbage with a clear error', () => {
    const token = operatorGrantToken(signOperatorGrant(rootKey, { operator: operator.peerId, issuedAt: NOW, ttlMs: HOUR }))
    expect(decodeOperatorGrantToken(token).length).toBeGreaterThan(0)
    for (const bad of ['', 'mycop1.', 'mycop1.!!!', 'mycb1.abcd', `mycop1.${'A'.repeat(2000)}`]) expect(() => decodeOperatorGrantToken(bad)).toThrow(InvalidOperatorGrantError)
  })
})
