// Invites this node issued, with their secrets, so it can check admission proofs and
// enforce single use and expiry. Consuming an invite is written before the certificate
// is handed out: a crash can lose an admission, never allow a second one. The daemon and CLI
// processes update the book at once, so every read-modify-write holds the file's lock
// (withFileLock): consume checks and marks under it, and no write is based on a stale read.
import { fromBase64Url, toBase64Url, toHex } from '../../crypto/index.ts'
import { readJson, writeFileAtomic, withFileLock } from './files.ts'
import type { Home } from './home.ts'

export interface IssuedInvite {
  id: Uint8Array
  secret: Uint8Array
  createdAt: number
  expiresAt: number
  usesLeft: number
  /** lifetime of the certificate issued on admission (browser invites issue short-lived ones) */
  certificateTtlMs?: number
  /** only this key may be admitted with it (a browser join request the operator approved) */
  forPeerId?: string
}

export class InviteBook {
  private readonly home: Home

  constructor (home: Home) {
    this.home = home
  }

  private file (): string {
    return this.home.path('invites.json')
  }

  list (): IssuedInvite[] {
    return readJson(this.file(), (v) => {
      if (!Array.isArray(v)) throw new Error('not a list')
      return v.map((o: Record<string, unknown>) => {
        if (o === null || typeof o !== 'object' || typeof o.id !== 'string' || typeof o.secret !== 'string' || !Number.isInteger(o.createdAt) || !Number.isInteger(o.expiresAt) || !Number.isInteger(o.usesLeft)) throw new Error('bad invite record')
        if (o.certificateTtlMs !== undefined && !(Number.isSafeInteger(o.certificateTtlMs) && (o.certificateTtlMs as number) > 0)) throw new Error('bad invite record')
        if (o.forPeerId !== undefined && typeof o.forPeerId !== 'string') throw new Error('bad invite record')
        return { id: fromBase64Url(o.id), secret: fromBase64Url(o.secret), createdAt: o.createdAt as number, expiresAt: o.expiresAt as number, usesLeft: o.usesLeft as number, certificateTtlMs: o.certificateTtlMs as number | undefined, forPeerId: o.forPeerId as string | undefined }
      })
    }) ?? []
  }

  private save (invites: IssuedInvite[]): void {
    writeFileAtomic(this.file(), JSON.stringify(invites.map(i => ({ id: toBase64Url(i.id), secret: toBase64Url(i.secret), createdAt: i.createdAt, expiresAt: i.expiresAt, usesLeft: i.usesLeft, certificateTtlMs: i.certificateTtlMs, forPeerId: i.forPeerId })), null, 2) + '\n', 0o600)
  }

  add (invite: IssuedInvite, now: number): void {
    // expired invites are dropped whenever the book is written; used ones stay until they
    // expire so a second use is reported as "already used", not "unknown"
    withFileLock(this.file(), () => { this.save([...this.list().filter(i => i.expiresAt > now), invite]) })
  }

  find (id: Uint8Array): IssuedInvite | undefined {
    const key = toHex(id)
    return this.list().find(i => toHex(i.id) === key)
  }

  /** Uses one admission of the invite; returns false when it is unknown, expired or used up. */
  consume (id: Uint8Array, now: number): 'ok' | 'unknown' | 'expired' | 'used' {
    return withFileLock(this.file(), () => this.consumeLocked(id, now))
  }

  private consumeLocked (id: Uint8Array, now: number): 'ok' | 'unknown' | 'expired' | 'used' {
    const invites = this.list()
    const key = toHex(id)
    const invite = invites.find(i => toHex(i.id) === key)
    if (invite === undefined) return 'unknown'
    if (invite.expiresAt <= now) return 'expired'
    if (invite.usesLeft <= 0) return 'used'
    invite.usesLeft -= 1
    this.save(invites)
    return 'ok'
  }

  revokeAll (): number {
    return withFileLock(this.file(), () => {
      const n = this.list().length
      this.save([])
      return n
    })
  }
}
