// The daemon-side checks of the spores: an exporter's membership chain, and the settings an
// operator may give through the environment.
import { describe, it, expect } from 'vitest'
import { encodeCanonical, getPublicKey, randomSecretKey, peerIdOfPublicKey } from '../../crypto/index.ts'
import { issueCertificate, encodeChain, networkIdOf } from '../../membership/index.ts'
import { membershipCheck, sporesSettingsFromEnv, SporesSettingsError } from '../../node/spores/index.ts'

describe('seed exporter membership', () => {
  const rootSecret = randomSecretKey()
  const rootPublic = getPublicKey(rootSecret)
  const networkId = networkIdOf(rootPublic)
  const memberSecret = randomSecretKey()
  const member = peerIdOfPublicKey(getPublicKey(memberSecret))
  const now = Date.now()
  const chainOf = (net = networkId, issuerSecret = rootSecret, ttlMs = 3600_000): Uint8Array => encodeCanonical(encodeChain([
    issueCertificate({ networkId: net, issuerSecretKey: issuerSecret, issuerPublicKey: getPublicKey(issuerSecret), subject: getPublicKey(memberSecret), capabilities: ['member'], issuedAt: now - 1000, ttlMs })
  ]))
  const check = membershipCheck(rootPublic, () => now)

  it('accepts the chain of the exporter it names, issued by this network\'s root', () => {
    expect(check(chainOf(), member, networkId)).toBe(true)
  })

  it('refuses another peer\'s chain, another network, another issuer, an expired chain and garbage', () => {
    const other = peerIdOfPublicKey(getPublicKey(randomSecretKey()))
    expect(check(chainOf(), other, networkId)).toBe(false)
    expect(check(chainOf(), member, networkIdOf(getPublicKey(randomSecretKey())))).toBe(false)
    expect(check(chainOf(networkId, randomSecretKey()), member, networkId)).toBe(false)
    expect(check(chainOf(networkId, rootSecret, 500), member, networkId)).toBe(false)
    expect(check(new Uint8Array(0), member, networkId)).toBe(false)
    expect(check(encodeCanonical({ not: 'a chain' }), member, networkId)).toBe(false)
  })
})

describe('spores settings from the environment', () => {
  it('defaults to one minute for publication and sync', () => {
    expect(sporesSettingsFromEnv({})).toEqual({ publishIntervalMs: 60_000, syncIntervalMs: 60_000, windowMs: undefined, maxEntries: {} })
  })

  it('reads intervals, window and per-type limits', () => {
    const s = sporesSettingsFromEnv({ MYCELIUM_SPORES_PUBLISH_MS: '5000', MYCELIUM_SPORES_SYNC_MS: '2000', MYCELIUM_SPORES_WINDOW_MS: '600000', MYCELIUM_SPORES_MAX_ENTRIES: 'service=40,connection=500' })
    expect(s).toEqual({ publishIntervalMs: 5000, syncIntervalMs: 2000, windowMs: 600_000, maxEntries: { service: 40, connection: 500 } })
  })

  it('refuses values that are not positive whole numbers or name unknown types', () => {
    expect(() => sporesSettingsFromEnv({ MYCELIUM_SPORES_PUBLISH_MS: 'soon' })).toThrow(SporesSettingsError)
    expect(() => sporesSettingsFromEnv({ MYCELIUM_SPORES_SYNC_MS: '-5' })).toThrow(/MYCELIUM_SPORES_SYNC_MS/)
    expect(() => sporesSettingsFromEnv({ MYCELIUM_SPORES_MAX_ENTRIES: 'gossip=5' })).toThrow(/gossip=5/)
    expect(() => sporesSettingsFromEnv({ MYCELIUM_SPORES_MAX_ENTRIES: 'service=0' })).toThrow(SporesSettingsError)
  })
})
