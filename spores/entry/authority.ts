// Who may speak for which key. The rule is checked after the signature, so `origin` is
// known to have signed the entry:
//   node, health, uptime, usage, role   key = origin (a node writes only about itself)
//   connection                          key = <origin>/<remote peer id> (the observing node)
//   service                             key = <origin>/<service name> (the service's owner)
//   trust                               key = subject peer id; signed by the network root,
//                                       by a member of the committee of the current primary
//                                       epoch, or carrying a certificate that the injected
//                                       TrustCertificateVerifier accepts (the BFT engine's
//                                       quorum certificate over this entry's body)
//   plan                                key = application name; signed by the network root, or
//                                       by an operator whose root-signed grant the entry
//                                       carries, and then the entry expires no later than the
//                                       grant (a backdated entry cannot outlive a delegation)
//   bundle                              key = <origin>/<bundle digest> (the holder)
//   exclusion                           key = the accused peer id; any signer, because the
//                                       value is the accused's own signed proof of a fault
//                                       that excludes at once (equivocation, conflicting
//                                       certificates), checked here; it has no owner, so
//                                       nobody can replace it once an epoch holds it
import type { SignedEntry } from './entry.ts'
import { APP_NAME } from './types.ts'
import { publicKeyOfPeerId } from '../../crypto/index.ts'
import { operatorGrantAdmits, decodeOperatorGrant } from '../../membership/index.ts'
import { provesExclusion } from './exclusion.ts'

export interface TrustAuthority {
  /** Peer id of the network root key. */
  rootPeerId?: string
  /** Members of the committee recorded in the current primary epoch. */
  committee: () => ReadonlySet<string>
  /** Checks a quorum certificate carried in a trust entry's value. */
  verifyTrustCertificate?: (entry: SignedEntry<'trust'>, certificate: Uint8Array) => boolean
}

function ownsPrefixedKey (origin: string, key: string): boolean {
  return key.length > origin.length + 1 && key.startsWith(origin) && key[origin.length] === '/'
}

export function mayWrite (entry: SignedEntry, trust: TrustAuthority): boolean {
  switch (entry.type) {
    case 'node':
    case 'health':
    case 'uptime':
    case 'usage':
    case 'role':
      return entry.key === entry.origin
    case 'connection':
      return ownsPrefixedKey(entry.origin, entry.key) && entry.key.slice(entry.origin.length + 1) === (entry as SignedEntry<'connection'>).value.remote
    case 'service':
      return ownsPrefixedKey(entry.origin, entry.key) && entry.key.slice(entry.origin.length + 1) === (entry as SignedEntry<'service'>).value.name
    case 'bundle':
      return ownsPrefixedKey(entry.origin, entry.key) && entry.key.slice(entry.origin.length + 1) === (entry as SignedEntry<'bundle'>).value.digest
    case 'plan':
      return APP_NAME.test(entry.key) && mayPlan(entry as SignedEntry<'plan'>, trust.rootPeerId)
    case 'exclusion':
      return provesExclusion((entry as SignedEntry<'exclusion'>).value.evidence, entry.key)
    case 'trust': {
      if (trust.rootPeerId !== undefined && entry.origin === trust.rootPeerId) return true
      if (trust.committee().has(entry.origin)) return true
      const certificate = (entry as SignedEntry<'trust'>).value.certificate
      return certificate !== undefined && trust.verifyTrustCertificate !== undefined && trust.verifyTrustCertificate(entry as SignedEntry<'trust'>, certificate)
    }
    default:
      return false
  }
}

function mayPlan (entry: SignedEntry<'plan'>, rootPeerId: string | undefined): boolean {
  if (rootPeerId === undefined) return false
  if (entry.origin === rootPeerId) return true
  const grant = entry.value.grant
  if (grant === undefined || entry.expiresAt === undefined) return false
  if (!operatorGrantAdmits(grant, { rootPublicKey: publicKeyOfPeerId(rootPeerId), operator: entry.origin, at: entry.issuedAt })) return false
  return entry.expiresAt <= decodeOperatorGrant(grant).expiresAt
}

/**
 * True if a strictly newer version may replace what a higher tier holds: its owner's own (a
 * node may move on from what the last epoch said of it), or, for trust, which has no owner,
 * one from a writer the rules above allow (checked when it was merged), so trust never freezes
 * once an epoch carries it.
 */
export function mayOverride (entry: { type: string, key: string, origin: string }): boolean {
  return entry.type === 'trust' || entry.type === 'plan' || ownerOf(entry) === entry.origin
}

/** The owner of a record: the one peer whose newer signed version may override a higher tier. */
export function ownerOf (entry: { type: string, key: string }): string | undefined {
  switch (entry.type) {
    case 'trust':
    case 'plan':
    case 'exclusion':
      return undefined
    case 'connection':
    case 'service':
    case 'bundle':
      return entry.key.slice(0, entry.key.indexOf('/'))
    default:
      return entry.key
  }
}
