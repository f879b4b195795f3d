// Certificates this node issued as the network administrator, so `network members` can
// list who was admitted, with which capabilities and until when. Certificates themselves
// live with their holders; this is the administrator's record of them.
import { peerIdOfPublicKey } from '../../crypto/index.ts'
import type { MembershipCertificate, Capability } from '../../membership/index.ts'
import { readJson, writeFileAtomic, withFileLock } from './files.ts'
import type { Home } from './home.ts'

export interface IssuedCertificate {
  peerId: string
  capabilities: Capability[]
  issuedAt: number
  expiresAt: number
}

export class MemberBook {
  private readonly home: Home

  constructor (home: Home) {
    this.home = home
  }

  private file (): string {
    return this.home.path('members.json')
  }

  list (): IssuedCertificate[] {
    return readJson(this.file(), (v) => {
      if (!Array.isArray(v)) throw new Error('not a list')
      return v.map((o: Record<string, unknown>) => {
        if (o === null || typeof o !== 'object' || typeof o.peerId !== 'string' || !Array.isArray(o.capabilities) || !Number.isSafeInteger(o.issuedAt) || !Number.isSafeInteger(o.expiresAt)) throw new Error('bad member record')
        return { peerId: o.peerId, capabilities: o.capabilities as Capability[], issuedAt: o.issuedAt as number, expiresAt: o.expiresAt as number }
      })
    }) ?? []
  }

  record (certificate: MembershipCertificate): void {
    const entry: IssuedCertificate = { peerId: peerIdOfPublicKey(certificate.subject), capabilities: certificate.capabilities, issuedAt: certificate.issuedAt, expiresAt: certificate.expiresAt }
    this.home.ensure()
    // the daemon (admissions) and the CLI both append: under the file's lock, none is lost
    withFileLock(this.file(), () => { writeFileAtomic(this.file(), JSON.stringify([...this.list(), entry], null, 2) + '\n') })
  }
}
