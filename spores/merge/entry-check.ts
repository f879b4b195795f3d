// The checks of validation-first merging that need no store: decode → schema → signature and
// origin → membership → expiry and window. The merger runs them on every incoming entry, and
// so does anything that relays entries without merging them (a bridge carrying service records
// into another network), so both accept exactly the same entries.
import { decodeEntry, verifyEntrySignature, MAX_ENTRY_BYTES, type SignedEntry } from '../entry/entry.ts'
import { SchemaError } from '../entry/schema.ts'
import { ENTRY_CODECS } from '../entry/types.ts'
import { mayWrite, type TrustAuthority } from '../entry/authority.ts'
import type { SporeLimits } from '../limits.ts'
import type { RejectionReason } from './rejection.ts'

export interface EntryCheckRules {
  trust: TrustAuthority
  limits: SporeLimits
  /** When given, entries whose origin is not a member are rejected as `unknown-origin`. */
  isMember?: (peerId: string) => boolean
}

export type EntryCheck = { ok: true, entry: SignedEntry } | { ok: false, reason: RejectionReason, type: string }

export function checkEntry (input: Uint8Array | SignedEntry, now: number, rules: EntryCheckRules): EntryCheck {
  let entry: SignedEntry
  if (input instanceof Uint8Array) {
    if (input.length > MAX_ENTRY_BYTES) return { ok: false, reason: 'oversized', type: 'unknown' }
    try {
      entry = decodeEntry(input)
    } catch (err) {
      return { ok: false, reason: err instanceof SchemaError ? 'schema' : 'malformed', type: 'unknown' }
    }
  } else {
    entry = input
  }
  if (!verifyEntrySignature(entry)) return { ok: false, reason: 'bad-signature', type: entry.type }
  if (!mayWrite(entry, rules.trust)) return { ok: false, reason: 'unauthorized-origin', type: entry.type }
  if (rules.isMember !== undefined && !rules.isMember(entry.origin)) return { ok: false, reason: 'unknown-origin', type: entry.type }
  if (entry.expiresAt !== undefined && entry.expiresAt <= now) return { ok: false, reason: 'expired', type: entry.type }
  if (entry.issuedAt > now + rules.limits.maxClockSkewMs) return { ok: false, reason: 'future', type: entry.type }
  if (ENTRY_CODECS[entry.type].temporal && entry.issuedAt < now - rules.limits.windowMs) return { ok: false, reason: 'outside-window', type: entry.type }
  return { ok: true, entry }
}
