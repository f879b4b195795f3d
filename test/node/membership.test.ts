import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { getPublicKey, randomSecretKey, peerIdOfPublicKey, encodeCanonical, toBase64Url } from '../../crypto/index.ts'
import {
  issueCertificate, encodeCertificate, decodeCertificate, verifyChain, networkIdOf, encodeInvite, decodeInvite,
  admissionProof, checkAdmissionProof, InvalidCertificateError, InvalidInviteError
} from '../../membership/index.ts'

const rootSecret = randomSecretKey()
const rootPublicKey = getPublicKey(rootSecret)
const networkId = networkIdOf(rootPublicKey)
const now = 1_800_000_000_000
const memberSecret = randomSecretKey()
const member = getPublicKey(memberSecret)

function memberCert (overrides: Partial<Parameters<typeof issueCertificate>[0]> = {}) {
  return issueCertificate({ networkId, issuerSecretKey: rootSecret, issuerPublicKey: rootPublicKey, subject: member, capabilities: ['member'], issuedAt: now, ttlMs: 3_600_000, ...overrides })
}

describe('membership certificates', () => {
  it('a root-signed certificate names its subject', () => {
    expect(verifyChain([memberCert()], { networkId, rootPublicKey, now })).toBe(peerIdOfPublicKey(member))
  })

  it('any changed byte of an encoded certificate is refused', () => {
    const bytes = encodeCertificate(memberCert())
    fc.assert(fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, flip) => {
      const copy = bytes.slice()
      copy[at] ^= flip
      expect(() => verifyChain([decodeCertificate(copy)], { networkId, rootPublicKey, now })).toThrow()
    }), { numRuns: 300 })
  })

  it('refuses other networks, expired, not-yet-valid and revoked certificates with a reason', () => {
    const otherRoot = getPublicKey(randomSecretKey())
    expect(() => verifyChain([memberCert()], { networkId: networkIdOf(otherRoot), rootPublicKey: otherRoot, now })).toThrow(/is for network/)
    expect(() => verifyChain([memberCert()], { networkId, rootPublicKey, now: now + 3_600_000 })).toThrow(/expired/)
    expect(() => verifyChain([memberCert()], { networkId, rootPublicKey, now: now - 3_600_000 })).toThrow(/not valid yet/)
    expect(() => verifyChain([memberCert()], { networkId, rootPublicKey, now, isRevoked: (p) => p === peerIdOfPublicKey(member) })).toThrow(/revoked/)
  })

  it('a delegated issuer needs the issuer capability from the root itself', () => {
    const issuerSecret = randomSecretKey()
    const issuer = getPublicKey(issuerSecret)
    const leaf = issueCertificate({ networkId, issuerSecretKey: issuerSecret, issuerPublicKey: issuer, subject: member, capabilities: ['member'], issuedAt: now, ttlMs: 60_000 })
    const delegation = issueCertificate({ networkId, issuerSecretKey: rootSecret, issuerPublicKey: rootPublicKey, subject: issuer, capabilities: ['issuer', 'member'], issuedAt: now, ttlMs: 60_000 })
    expect(verifyChain([leaf, delegation], { networkId, rootPublicKey, now })).toBe(peerIdOfPublicKey(member))
    const plainMember = issueCertificate({ networkId, issuerSecretKey: rootSecret, issuerPublicKey: rootPublicKey, subject: issuer, capabilities: ['member'], issuedAt: now, ttlMs: 60_000 })
    expect(() => verifyChain([leaf, plainMember], { networkId, rootPublicKey, now })).toThrow(/may not issue/)
    expect(() => verifyChain([leaf], { networkId, rootPublicKey, now })).toThrow(InvalidCertificateError)
    expect(() => verifyChain([leaf, delegation, delegation], { networkId, rootPublicKey, now })).toThrow(/1 to 2 links/)
  })
})

describe('invites and admission proofs', () => {
  const invite = { networkId, networkName: 'home', rootPublicKey, bootstrap: ['/ip4/127.0.0.1/tcp/7700/p2p/12D3KooWK8soN5WHh3B8ATUiCPhTr1Y8rbo9hH4hh948xNXQ5wFa'], id: new Uint8Array(16).fill(7), secret: new Uint8Array(32).fill(9), expiresAt: now }

  it('round-trips and refuses damaged tokens with a clear reason', () => {
    const token = encodeInvite(invite)
    expect(decodeInvite(`  ${token}\n`)).toEqual(invite)
    expect(() => decodeInvite('hello')).toThrow(InvalidInviteError)
    expect(() => decodeInvite(token.slice(0, -10))).toThrow(/malformed/)
    const forged = encodeInvite({ ...invite, rootPublicKey: getPublicKey(randomSecretKey()) })
    expect(() => decodeInvite(forged)).toThrow(/does not match its network id/)
    expect(() => decodeInvite(encodeInvite({ ...invite, bootstrap: [] }))).toThrow(/bootstrap/)
  })

  it('carries the inviter\'s latest certified epoch as the new node\'s anchor, and refuses a malformed one', () => {
    const anchored = { ...invite, epochAnchor: { epoch: 4321, digest: new Uint8Array(32).fill(3) } }
    expect(decodeInvite(encodeInvite(anchored))).toEqual(anchored)
    const bad = (anchor: unknown): string => `myc1.${toBase64Url(encodeCanonical({ v: 1, net: networkId, name: 'home', root: rootPublicKey, boot: invite.bootstrap, id: invite.id, secret: invite.secret, exp: now, anchor }))}`
    expect(decodeInvite(bad([4321, new Uint8Array(32)])).epochAnchor?.epoch).toBe(4321)
    for (const anchor of [[-1, new Uint8Array(32)], [1.5, new Uint8Array(32)], [1, new Uint8Array(31)], [1], 'epoch']) {
      expect(() => decodeInvite(bad(anchor))).toThrow(/malformed epoch anchor/)
    }
  })

  it('a proof is bound to the joiner and the inviter', () => {
    const joiner = peerIdOfPublicKey(getPublicKey(randomSecretKey()))
    const inviter = peerIdOfPublicKey(getPublicKey(randomSecretKey()))
    const other = peerIdOfPublicKey(getPublicKey(randomSecretKey()))
    const proof = admissionProof(invite.secret, invite.id, networkId, joiner, inviter)
    expect(checkAdmissionProof(proof, invite.secret, invite.id, networkId, joiner, inviter)).toBe(true)
    expect(checkAdmissionProof(proof, invite.secret, invite.id, networkId, other, inviter)).toBe(false)
    expect(checkAdmissionProof(proof, invite.secret, invite.id, networkId, joiner, other)).toBe(false)
    expect(checkAdmissionProof(proof, new Uint8Array(32), invite.id, networkId, joiner, inviter)).toBe(false)
  })
})
