// Invites: one copy-pasteable token that carries everything a new machine needs to join
// (network id, root key, where to dial, a single-use admission secret, an expiry).
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { encodeCanonical, decodeCanonical, toBase64Url, fromBase64Url, constantTimeEqual } from '../crypto/index.ts'
import { InvalidInviteError } from './errors.ts'
import { isNetworkId, networkIdOf } from './network-id.ts'

export const INVITE_PREFIX = 'myc1.'
const MAX_TOKEN_LENGTH = 4096

export interface Invite {
  networkId: string
  networkName: string
  rootPublicKey: Uint8Array
  bootstrap: string[]
  id: Uint8Array
  secret: Uint8Array
  expiresAt: number
  /**
   * The inviter's latest certified primary epoch when it made the invite: the new node's
   * starting point for the primary spore's chain (it trusts the invite for the root key
   * already), so it needs no header from epoch 0, which members drop after their retention.
   */
  epochAnchor?: EpochAnchor
}

export interface EpochAnchor {
  epoch: number
  digest: Uint8Array
}

export function encodeInvite (invite: Invite): string {
  return INVITE_PREFIX + toBase64Url(encodeCanonical({
    v: 1, net: invite.networkId, name: invite.networkName, root: invite.rootPublicKey, boot: invite.bootstrap, id: invite.id, secret: invite.secret, exp: invite.expiresAt,
    ...(invite.epochAnchor === undefined ? {} : { anchor: [invite.epochAnchor.epoch, invite.epochAnchor.digest] })
  }))
}

/** Decodes and checks an invite token's form; expiry is checked by the caller with its clock. */
export function decodeInvite (token: string): Invite {
  const text = token.trim()
  if (!text.startsWith(INVITE_PREFIX)) throw new InvalidInviteError(`invite must start with "${INVITE_PREFIX}"`)
  if (text.length > MAX_TOKEN_LENGTH) throw new InvalidInviteError('invite is too long')
  let raw: Record<string, unknown>
  try {
    raw = decodeCanonical(fromBase64Url(text.slice(INVITE_PREFIX.length))) as Record<string, unknown>
  } catch {
    throw new InvalidInviteError('invite is malformed (was it copied whole?)')
  }
  if (raw === null || typeof raw !== 'object') throw new InvalidInviteError('invite is malformed')
  const { v, net, name, root, boot, id, secret, exp, anchor } = raw
  if (v !== 1) throw new InvalidInviteError('invite has an unknown version')
  if (!isNetworkId(net) || typeof name !== 'string' || name.length > 100) throw new InvalidInviteError('invite names no valid network')
  if (!(root instanceof Uint8Array) || root.length !== 32 || networkIdOf(root) !== net) throw new InvalidInviteError('invite root key does not match its network id')
  if (!Array.isArray(boot) || boot.length === 0 || boot.length > 32 || !boot.every(a => typeof a === 'string' && a.startsWith('/') && a.length < 512)) throw new InvalidInviteError('invite has no valid bootstrap addresses')
  if (!(id instanceof Uint8Array) || id.length !== 16 || !(secret instanceof Uint8Array) || secret.length !== 32) throw new InvalidInviteError('invite secret is malformed')
  if (!Number.isSafeInteger(exp)) throw new InvalidInviteError('invite has no valid expiry')
  if (anchor !== undefined && !(Array.isArray(anchor) && anchor.length === 2 && Number.isSafeInteger(anchor[0]) && anchor[0] >= 0 && anchor[1] instanceof Uint8Array && anchor[1].length === 32)) throw new InvalidInviteError('invite has a malformed epoch anchor')
  return { networkId: net, networkName: name, rootPublicKey: root, bootstrap: boot as string[], id, secret, expiresAt: exp as number, ...(anchor === undefined ? {} : { epochAnchor: { epoch: anchor[0] as number, digest: anchor[1] as Uint8Array } }) }
}

/**
 * Proof that the joiner knows the invite secret, without sending it: an HMAC keyed by the
 * secret over the invite id and both peer ids. It is bound to the joiner's own key (an
 * eavesdropper cannot reuse it for another key) and to the inviter (no replay elsewhere).
 */
export function admissionProof (secret: Uint8Array, inviteId: Uint8Array, networkId: string, joinerPeerId: string, inviterPeerId: string): Uint8Array {
  return hmac(nobleSha256, secret, encodeCanonical({ ctx: 'mycelium-admission-v1', net: networkId, id: inviteId, joiner: joinerPeerId, inviter: inviterPeerId }))
}

/** Constant-time: the proof is a MAC, and an early exit would leak how much of a guess was right. */
export function checkAdmissionProof (proof: Uint8Array, secret: Uint8Array, inviteId: Uint8Array, networkId: string, joinerPeerId: string, inviterPeerId: string): boolean {
  return constantTimeEqual(proof, admissionProof(secret, inviteId, networkId, joinerPeerId, inviterPeerId))
}
