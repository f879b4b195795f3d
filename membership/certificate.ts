// Membership certificates: the network root (or an issuer the root delegated to) signs
// "this Ed25519 key is a member of network N until T". Browser-safe: the web client
// checks and presents the same certificates.
import { encodeCanonical, decodeCanonical, sign, verify, equalBytes, peerIdOfPublicKey } from '../crypto/index.ts'
import { InvalidCertificateError, CertificateExpiredError, CertificateRevokedError } from './errors.ts'
import { isNetworkId } from './network-id.ts'

/** member: may connect; issuer: may sign member certificates (sclerotia serving browsers). */
export type Capability = 'member' | 'issuer'
const CAPABILITIES: readonly Capability[] = ['member', 'issuer']

export interface MembershipCertificate {
  networkId: string
  subject: Uint8Array
  capabilities: Capability[]
  issuedAt: number
  expiresAt: number
  issuer: Uint8Array
  signature: Uint8Array
}

/** Leaf first; at most one delegated issuer between the leaf and the root. */
export type CertificateChain = MembershipCertificate[]

export const MAX_CHAIN_LENGTH = 2

function signedPart (c: Omit<MembershipCertificate, 'signature'>): Uint8Array {
  return encodeCanonical({ ctx: 'mycelium-membership-v1', net: c.networkId, sub: c.subject, caps: c.capabilities, iat: c.issuedAt, exp: c.expiresAt, iss: c.issuer })
}

export function issueCertificate (options: { networkId: string, issuerSecretKey: Uint8Array, issuerPublicKey: Uint8Array, subject: Uint8Array, capabilities: Capability[], issuedAt: number, ttlMs: number }): MembershipCertificate {
  const unsigned = {
    networkId: options.networkId,
    subject: options.subject,
    capabilities: [...options.capabilities].sort(),
    issuedAt: options.issuedAt,
    expiresAt: options.issuedAt + options.ttlMs,
    issuer: options.issuerPublicKey
  }
  return { ...unsigned, signature: sign(options.issuerSecretKey, signedPart(unsigned)) }
}

export function encodeCertificate (c: MembershipCertificate): Uint8Array {
  return encodeCanonical({ net: c.networkId, sub: c.subject, caps: c.capabilities, iat: c.issuedAt, exp: c.expiresAt, iss: c.issuer, sig: c.signature })
}

function isKey (v: unknown, length: number): v is Uint8Array {
  return v instanceof Uint8Array && v.length === length
}

export function decodeCertificate (bytes: Uint8Array): MembershipCertificate {
  let raw: Record<string, unknown>
  try {
    raw = decodeCanonical(bytes) as Record<string, unknown>
  } catch (err) {
    throw new InvalidCertificateError(`certificate is not decodable: ${(err as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object' || Object.keys(raw).length !== 7) throw new InvalidCertificateError('certificate has the wrong shape')
  const { net, sub, caps, iat, exp, iss, sig } = raw
  if (!isNetworkId(net)) throw new InvalidCertificateError('certificate has no valid network id')
  if (!isKey(sub, 32) || !isKey(iss, 32) || !isKey(sig, 64)) throw new InvalidCertificateError('certificate keys or signature have the wrong length')
  if (!Array.isArray(caps) || caps.length === 0 || caps.length > CAPABILITIES.length || !caps.every(c => CAPABILITIES.includes(c))) throw new InvalidCertificateError('certificate has unknown capabilities')
  if (!Number.isSafeInteger(iat) || !Number.isSafeInteger(exp) || (exp as number) <= (iat as number)) throw new InvalidCertificateError('certificate has invalid validity times')
  return { networkId: net, subject: sub, capabilities: caps as Capability[], issuedAt: iat as number, expiresAt: exp as number, issuer: iss, signature: sig }
}

export function encodeChain (chain: CertificateChain): Uint8Array[] {
  return chain.map(encodeCertificate)
}

/** Links a chain may have on the wire; verifyChain then holds it to MAX_CHAIN_LENGTH. */
const MAX_CHAIN_ON_WIRE = 4

/** A chain as it travels (encoded certificates, leaf first), as the handshake and the roster carry it. */
export function decodeEncodedChain (value: unknown): CertificateChain {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_CHAIN_ON_WIRE || !value.every(v => v instanceof Uint8Array)) throw new InvalidCertificateError('certificate chain is malformed')
  return value.map(v => decodeCertificate(v as Uint8Array))
}

export interface ChainCheck {
  networkId: string
  rootPublicKey: Uint8Array
  now: number
  /** Revoked member or issuer keys, by peer id. */
  isRevoked?: (peerId: string) => boolean
}

/**
 * Verifies a chain leaf-first up to the root and returns the leaf subject's peer id.
 * Every link must be signed by the next one's subject, be valid now, name this network,
 * and a delegated issuer must hold the `issuer` capability from the root itself.
 */
export function verifyChain (chain: CertificateChain, check: ChainCheck): string {
  if (chain.length === 0 || chain.length > MAX_CHAIN_LENGTH) throw new InvalidCertificateError(`certificate chain must have 1 to ${MAX_CHAIN_LENGTH} links`)
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]
    if (cert.networkId !== check.networkId) throw new InvalidCertificateError(`certificate is for network ${cert.networkId}, not ${check.networkId}`)
    if (check.now < cert.issuedAt - 60_000) throw new InvalidCertificateError('certificate is not valid yet')
    if (check.now >= cert.expiresAt) throw new CertificateExpiredError('certificate has expired')
    const expectedIssuer = i === chain.length - 1 ? check.rootPublicKey : chain[i + 1].subject
    if (!equalBytes(cert.issuer, expectedIssuer)) throw new InvalidCertificateError(i === chain.length - 1 ? 'certificate is not signed by this network\'s root key' : 'certificate chain is broken')
    if (i > 0 && !cert.capabilities.includes('issuer')) throw new InvalidCertificateError('intermediate certificate may not issue certificates')
    if (!verify(cert.issuer, signedPart(cert), cert.signature)) throw new InvalidCertificateError('certificate signature is invalid')
    if (check.isRevoked?.(peerIdOfPublicKey(cert.subject)) === true) throw new CertificateRevokedError('certificate was revoked')
  }
  return peerIdOfPublicKey(chain[0].subject)
}
