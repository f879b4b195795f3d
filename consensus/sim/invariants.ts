// What must hold after every step of a schedule:
//   - at most one certified epoch per number, across every honest member, crashes included;
//   - every certified epoch is valid under the content rules against the one before it;
//   - no honest member is slashed by an honest member's ledger;
//   - no certified epoch takes an honest member out of the candidates (exclusions name only
//     members whose own signatures prove an excluding fault).
// (Progress after the heal is checked by the simulation at the end.)
import { toHex } from '../../crypto/index.ts'
import type { CertifiedEpoch } from '../primary-epochs.ts'

export class Invariants {
  readonly violations: string[] = []
  private readonly digests = new Map<number, string>()
  /** Content checks already made, by epoch digest (every member stores the same epochs). */
  private readonly checked = new Map<string, string | undefined>()
  private highest = 0
  private readonly honest: (peerId: string) => boolean
  private readonly check: (epoch: CertifiedEpoch, previous: CertifiedEpoch) => string | undefined
  private readonly candidates: (epoch: CertifiedEpoch) => string[]

  constructor (options: { honest: (peerId: string) => boolean, check: (epoch: CertifiedEpoch, previous: CertifiedEpoch) => string | undefined, candidates: (epoch: CertifiedEpoch) => string[] }) {
    this.honest = options.honest
    this.check = options.check
    this.candidates = options.candidates
  }

  violation (what: string): void {
    if (this.violations.length < 20) this.violations.push(what)
  }

  highestEpoch (): number {
    return this.highest
  }

  /** An honest member stored a certified epoch after `previous`. */
  certified (member: string, epoch: CertifiedEpoch, previous: CertifiedEpoch): void {
    const digest = toHex(epoch.digest)
    const held = this.digests.get(epoch.epoch)
    if (held !== undefined && held !== digest) this.violation(`two certified epochs ${epoch.epoch}: ${held.slice(0, 16)} and ${digest.slice(0, 16)} (on ${member.slice(-8)})`)
    this.digests.set(epoch.epoch, held ?? digest)
    if (epoch.epoch !== previous.epoch + 1) this.violation(`${member.slice(-8)} stored epoch ${epoch.epoch} after ${previous.epoch}`)
    const id = `${digest}|${toHex(previous.digest)}`
    if (!this.checked.has(id)) this.checked.set(id, this.check(epoch, previous))
    const wrong = this.checked.get(id)
    if (wrong !== undefined) this.violation(`certified epoch ${epoch.epoch} breaks the rules: ${wrong}`)
    const named = new Set(this.candidates(epoch))
    for (const peerId of this.candidates(previous)) {
      if (this.honest(peerId) && !named.has(peerId)) this.violation(`certified epoch ${epoch.epoch} takes honest ${peerId.slice(-8)} out of the candidates`)
    }
    this.highest = Math.max(this.highest, epoch.epoch)
  }

  /** An honest member's ledger slashed `accused`. */
  slashed (member: string, accused: string, reason: string, evidenceId: string): void {
    if (this.honest(accused)) this.violation(`honest ${accused.slice(-8)} slashed for ${reason} on ${member.slice(-8)} (evidence ${evidenceId.slice(0, 16)})`)
  }
}
