// Membership: the handshake's hello (with the certificate chain it carries, verified as the
// handshake does) and verdict frames, single certificates, invite tokens, revocations.
// The roster message is not here (see targets/index.ts).
import { encodeCanonical, toBase64Url } from '../../../crypto/index.ts'
import { issueCertificate, encodeCertificate, decodeCertificate, verifyChain, encodeInvite, decodeInvite, networkIdOf, signRevocation, encodeRevocation, decodeRevocation, type MembershipCertificate, type Invite, type Revocation } from '../../../membership/index.ts'
import { encodeHello, decodeHello, encodeVerdict, decodeVerdict } from '../../../membership/handshake.ts'
import type { FuzzTarget } from '../engine/target.ts'
import { keyOf, NOW, text } from './fixtures.ts'

const root = keyOf('network-root')
const networkId = networkIdOf(root.publicKey)
const issuer = keyOf('issuer')
const member = keyOf('member')
const HOUR = 3600_000
/** The handshake's length-prefixed frames are at most 16 KiB (handshake.ts MAX_MESSAGE_BYTES). */
const HANDSHAKE_FRAME_BYTES = 16 * 1024

const memberCert = issueCertificate({ networkId, issuerSecretKey: root.secretKey, issuerPublicKey: root.publicKey, subject: member.publicKey, capabilities: ['member'], issuedAt: NOW - HOUR, ttlMs: 24 * HOUR })
const issuerCert = issueCertificate({ networkId, issuerSecretKey: root.secretKey, issuerPublicKey: root.publicKey, subject: issuer.publicKey, capabilities: ['issuer', 'member'], issuedAt: NOW - HOUR, ttlMs: 24 * HOUR })
const browserCert = issueCertificate({ networkId, issuerSecretKey: issuer.secretKey, issuerPublicKey: issuer.publicKey, subject: keyOf('tab').publicKey, capabilities: ['member'], issuedAt: NOW - HOUR, ttlMs: 12 * HOUR })

const hellos = [
  encodeHello(networkId, { t: 'member', chain: [memberCert] }),
  encodeHello(networkId, { t: 'member', chain: [browserCert, issuerCert] }),
  encodeHello(networkId, { t: 'admission', inviteId: new Uint8Array(16).fill(5), proof: new Uint8Array(32).fill(6) })
]

export const helloTarget: FuzzTarget = {
  name: 'membership-hello',
  what: 'membership/handshake.ts decodeHello, then verifyChain as the handshake does',
  layers: [{ name: 'hello', structure: 'cbor', seeds: hellos }],
  maxBytes: HANDSHAKE_FRAME_BYTES,
  decode: (bytes) => {
    const hello = decodeHello(bytes, networkId)
    if (hello.t === 'member') verifyChain(hello.chain, { networkId, rootPublicKey: root.publicKey, now: NOW, isRevoked: () => false })
    return hello
  },
  // not canonical: a hello is not signed, and fields a newer peer may add are ignored
  reencode: (hello) => encodeHello(networkId, hello as Parameters<typeof encodeHello>[1])
}

export const verdictTarget: FuzzTarget = {
  name: 'membership-verdict',
  what: 'membership/handshake.ts decodeVerdict',
  layers: [{
    name: 'verdict',
    structure: 'cbor',
    seeds: [encodeVerdict({ t: 'ok' }), encodeVerdict({ t: 'admitted', chain: [memberCert] }), encodeCanonical({ t: 'refused', reason: 'certificate has expired', kind: 'expired' }), encodeCanonical({ t: 'refused', reason: 'no' })]
  }],
  decode: decodeVerdict,
  maxBytes: HANDSHAKE_FRAME_BYTES
}

export const certificateTarget: FuzzTarget = {
  name: 'membership-certificate',
  what: 'membership/certificate.ts decodeCertificate',
  layers: [{ name: 'certificate', structure: 'cbor', seeds: [memberCert, issuerCert, browserCert].map(encodeCertificate) }],
  decode: decodeCertificate,
  reencode: (c) => encodeCertificate(c as MembershipCertificate),
  canonical: true
}

const invite: Invite = { networkId, networkName: 'home lab', rootPublicKey: root.publicKey, bootstrap: ['/ip4/192.168.1.2/tcp/7700/p2p/12D3KooWDa7Y4fJc1bFY7wBqJ1j1ZXAc9cPe962HTdYhBuWtvAxD', '/ip6/::1/tcp/7701/ws'], id: new Uint8Array(16).fill(1), secret: new Uint8Array(32).fill(2), expiresAt: NOW + HOUR }

export const inviteTarget: FuzzTarget = {
  name: 'invite-token',
  what: 'membership/invite.ts decodeInvite (the pasted token)',
  layers: [
    { name: 'token', structure: 'text', seeds: [text(encodeInvite(invite)), text(`  ${encodeInvite({ ...invite, bootstrap: ['/dns4/a.example/tcp/1'] })}\n`)] },
    // the CBOR inside, framed again as a token
    { name: 'cbor', structure: 'cbor', seeds: [decodeBase64Of(encodeInvite(invite))], wrap: (cbor) => text(`myc1.${toBase64Url(cbor)}`) }
  ],
  decode: (bytes) => decodeInvite(new TextDecoder().decode(bytes)),
  reencode: (i) => text(encodeInvite(i as Invite))
}

function decodeBase64Of (token: string): Uint8Array {
  return Buffer.from(token.slice('myc1.'.length), 'base64url')
}

const revocations = [signRevocation(root.secretKey, networkId, member.peerId, NOW), signRevocation(root.secretKey, networkId, keyOf('tab').peerId, 0)]

export const revocationTarget: FuzzTarget = {
  name: 'revocation',
  what: 'membership/revocation.ts decodeRevocation',
  layers: [{ name: 'revocation', structure: 'cbor', seeds: revocations.map(encodeRevocation) }],
  decode: (bytes) => decodeRevocation(bytes, networkId, root.publicKey),
  reencode: (r) => encodeRevocation(r as Revocation),
  canonical: true
}

export const membershipTargets = [helloTarget, verdictTarget, certificateTarget, inviteTarget, revocationTarget]

