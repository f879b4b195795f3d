// Finding 4 of issue 14, at unit level: bridge grants (who may speak for another network),
// their check on bridged messages, and the spores' checks a bridge runs before carrying a
// service record. The daemon-level attack is in test/operator/bridge.test.ts.
import { describe, it, expect } from 'vitest'
import { randomSecretKey, getPublicKey, peerIdOfPublicKey, encodeCanonical } from '../../crypto/index.ts'
import { networkIdOf, signBridgeGrant, encodeBridgeGrant, decodeBridgeGrant, decodeBridgeGrantToken, bridgeGrantToken, grantAdmits, InvalidBridgeGrantError } from '../../membership/index.ts'
import { encodeBridgedMessage, decodeBridgedMessage, isAttested } from '../../node/gossip/index.ts'
import { ServiceRecordGate, BridgeGrants, BridgeGrantMismatchError } from '../../node/bridge/index.ts'
import { signEntry, signerOf } from '../../spores/index.ts'

function network (): { secret: Uint8Array, networkId: string } {
  const secret = randomSecretKey()
  return { secret, networkId: networkIdOf(getPublicKey(secret)) }
}
const keyPair = (): { secret: Uint8Array, peerId: string } => { const secret = randomSecretKey(); return { secret, peerId: peerIdOfPublicKey(getPublicKey(secret)) } }

describe('bridge grants', () => {
  const into = network()
  const from = network()
  const bridge = keyPair()
  const now = Date.now()
  const grant = signBridgeGrant(into.secret, { bridge: bridge.peerId, origin: from.networkId, issuedAt: now, ttlMs: 60_000 })

  it('are signed by the root of the network they admit into, and refuse any change', () => {
    expect(decodeBridgeGrantToken(bridgeGrantToken(grant))).toEqual(grant)
    const bytes = encodeBridgeGrant(grant)
    const tampered = Uint8Array.from(bytes)
    tampered[tampered.length - 70] ^= 1
    expect(() => decodeBridgeGrant(tampered)).toThrow(InvalidBridgeGrantError)
    // a grant signed by another root while claiming this network
    const other = network()
    const forged = signBridgeGrant(other.secret, { bridge: bridge.peerId, origin: from.networkId, issuedAt: now, ttlMs: 60_000 })
    expect(() => decodeBridgeGrant(encodeBridgeGrant({ ...forged, networkId: into.networkId }))).toThrow(/root key does not match/)
    expect(() => decodeBridgeGrant(encodeCanonical({ net: into.networkId }))).toThrow(InvalidBridgeGrantError)
  })

  it('admit exactly one bridge key, one origin network, in one network, while valid', () => {
    const expected = { networkId: into.networkId, bridge: bridge.peerId, origin: from.networkId, now }
    expect(grantAdmits(grant, expected)).toBe(true)
    expect(grantAdmits(grant, { ...expected, bridge: keyPair().peerId })).toBe(false)
    expect(grantAdmits(grant, { ...expected, origin: network().networkId })).toBe(false)
    expect(grantAdmits(grant, { ...expected, networkId: from.networkId })).toBe(false)
    expect(grantAdmits(grant, { ...expected, now: now + 60_000 })).toBe(false)
  })

  it('make a bridged message attributed to its origin only when the sender holds one', () => {
    const message = { topic: 'chat', originNetwork: from.networkId, originPeer: keyPair().peerId, data: new TextEncoder().encode('hi'), bridge: bridge.peerId }
    const receiver = { networkId: into.networkId, sender: bridge.peerId, now }
    const granted = decodeBridgedMessage(encodeBridgedMessage({ ...message, grant: encodeBridgeGrant(grant) }, bridge.secret))!
    expect(isAttested(granted, receiver)).toBe(true)
    // the first format (no grant) still decodes, and is only its sender's word
    const plain = decodeBridgedMessage(encodeBridgedMessage(message, bridge.secret))!
    expect(plain.grant).toBeUndefined()
    expect(isAttested(plain, receiver)).toBe(false)
    // someone else's grant, or a grant for another origin, attests nothing
    const thief = keyPair()
    const stolen = decodeBridgedMessage(encodeBridgedMessage({ ...message, bridge: thief.peerId, grant: encodeBridgeGrant(grant) }, thief.secret))!
    expect(isAttested(stolen, { ...receiver, sender: thief.peerId })).toBe(false)
    const elsewhere = decodeBridgedMessage(encodeBridgedMessage({ ...message, originNetwork: network().networkId, grant: encodeBridgeGrant(grant) }, bridge.secret))!
    expect(isAttested(elsewhere, receiver)).toBe(false)
    // the grant is under the bridge's signature: it cannot be swapped in transit
    const bytes = encodeBridgedMessage({ ...message, grant: encodeBridgeGrant(grant) }, bridge.secret)
    const swapped = Uint8Array.from(bytes)
    swapped[swapped.length - 100] ^= 1
    expect(decodeBridgedMessage(swapped)).toBeUndefined()
  })

  it('are held by a bridge for the direction they attest, and refused when they fit neither', () => {
    const local = keyPair()
    const grants = new BridgeGrants({ localNetwork: from.networkId, remoteNetwork: into.networkId, localPeerId: () => local.peerId, remotePeerId: () => bridge.peerId, clock: () => now })
    expect(grants.current('out')).toBeUndefined()
    expect(grants.hold(grant)).toBe('out')
    expect(grants.current('out')).toEqual(encodeBridgeGrant(grant))
    expect(grants.current('in')).toBeUndefined()
    expect(grants.hold(signBridgeGrant(from.secret, { bridge: local.peerId, origin: into.networkId, issuedAt: now, ttlMs: 60_000 }))).toBe('in')
    expect(() => grants.hold(signBridgeGrant(from.secret, { bridge: keyPair().peerId, origin: into.networkId, issuedAt: now, ttlMs: 60_000 }))).toThrow(BridgeGrantMismatchError)
  })
})

describe('the service records a bridge carries', () => {
  const member = keyPair()
  const now = Date.now()
  const record = (secret: Uint8Array, overrides: { key?: string, port?: number, seq?: number } = {}): Uint8Array => {
    const signer = signerOf(secret)
    return signEntry(signer, { type: 'service', key: overrides.key ?? `${signer.peerId}/chat`, value: { name: 'chat', endpoints: [`/ip4/10.0.0.1/tcp/${overrides.port ?? 1}`] }, seq: overrides.seq ?? now, issuedAt: now }).bytes
  }
  const gate = (): ServiceRecordGate => new ServiceRecordGate({ isMember: (p) => p === member.peerId, clock: () => now })
  const all = (): boolean => true

  it('pass the spores\' checks first: signature, owner, membership', () => {
    const g = gate()
    const valid = record(member.secret)
    // the same body with a zero signature
    const zeroSig = Uint8Array.from(valid).fill(0, valid.length - 64)
    expect(g.check(zeroSig, all)).toMatchObject({ ok: false, reason: 'bad-signature', carried: true })
    expect(g.check(record(randomSecretKey()), all)).toMatchObject({ ok: false, reason: 'unknown-origin' })
    expect(g.check(record(member.secret, { key: `${keyPair().peerId}/chat` }), all)).toMatchObject({ ok: false, reason: 'unauthorized-origin' })
    expect(g.check(new Uint8Array([1, 2, 3]), all)).toMatchObject({ ok: false, carried: false })
    expect(g.check(valid, () => false)).toMatchObject({ ok: false, reason: 'not-carried', carried: false })
    expect(g.check(valid, all).ok).toBe(true)
  })

  it('cross once per version', () => {
    const g = gate()
    const first = g.check(record(member.secret, { seq: now }), all)
    if (!first.ok) throw new Error('valid record refused')
    g.carry(first.entry)
    expect(g.check(record(member.secret, { seq: now }), all)).toMatchObject({ ok: false, reason: 'replay' })
    expect(g.check(record(member.secret, { seq: now - 1 }), all)).toMatchObject({ ok: false, reason: 'replay' })
    expect(g.check(record(member.secret, { seq: now + 1, port: 2 }), all).ok).toBe(true)
  })
})
