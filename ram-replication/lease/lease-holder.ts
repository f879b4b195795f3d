// The holder's side of a lease: gather a quorum for a term, renew it, and know to the
// millisecond (on its own clock, with the drift margin) until when it may run the guest.
import type { LeaseGroup, LeaseReply, LeaseRequest, MonotonicClock } from './lease-terms.ts'
import { DEFAULT_LEASE_MS, LEASE_DRIFT, monotonicNow, quorumOf } from './lease-terms.ts'

/** Sends one request to one voter; resolves undefined when the voter did not answer in time. */
export type LeaseAsk = (voter: string, request: LeaseRequest) => Promise<LeaseReply | undefined>

export interface LeaseRound {
  granted: boolean
  /** On the holder's clock: the lease runs until here (when granted). */
  validUntil: number
  grants: string[]
  /** The highest term a voter reported, and its holder: a newer term means stand down. */
  newestTerm: number
  newestHolder?: string
  refusals: Array<{ voter: string, reason?: string, waitMs?: number }>
}

export interface LeaseHolderOptions {
  vmId: string
  self: string
  ask: LeaseAsk
  durationMs?: number
  clock?: MonotonicClock
}

export class LeaseHolder {
  readonly vmId: string
  private readonly self: string
  private readonly ask: LeaseAsk
  readonly durationMs: number
  private readonly clock: MonotonicClock
  term = 0
  group: LeaseGroup = { generation: 0, voters: [] }
  /** The lease runs until here on this node's clock (0: never held). */
  validUntil = 0
  /** Set once a voter showed a newer term held by someone else: this node must never run the VM again. */
  supersededBy?: { term: number, holder?: string }

  constructor (options: LeaseHolderOptions) {
    this.vmId = options.vmId
    this.self = options.self
    this.ask = options.ask
    this.durationMs = options.durationMs ?? DEFAULT_LEASE_MS
    this.clock = options.clock ?? monotonicNow
  }

  holds (): boolean {
    return this.supersededBy === undefined && this.clock() < this.validUntil
  }

  remainingMs (): number {
    return this.validUntil - this.clock()
  }

  /**
   * Ask every voter of `group` (and of `previous`, during a group change) for `term`. The lease
   * is held when a quorum of each group granted it; it counts from before the first send.
   */
  async acquire (term: number, group: LeaseGroup, epoch: number, previous?: LeaseGroup, options: { probe?: boolean } = {}): Promise<LeaseRound> {
    // A new holder asks first whether a quorum would grant (see LeaseRequest.probe); a handover
    // skips it: the holder gave the term up, there is no one to protect.
    if (term !== this.term && options.probe !== false) {
      const probe = await this.round(term, group, epoch, previous, true)
      if (!probe.granted) return probe
    }
    const round = await this.round(term, group, epoch, previous)
    if (round.granted) {
      this.term = term
      this.group = group
      this.validUntil = round.validUntil
    }
    return round
  }

  /** Renew the current term with the current group. */
  async renew (epoch: number): Promise<LeaseRound> {
    const round = await this.round(this.term, this.group, epoch)
    if (round.granted && round.validUntil > this.validUntil) this.validUntil = round.validUntil
    return round
  }

  /**
   * Give the term up: the voters that hear it may grant the next term at once. Call only once
   * the guest here has stopped for good; from now on this node does not hold the lease.
   */
  async release (): Promise<void> {
    this.validUntil = 0
    const request: LeaseRequest = { vmId: this.vmId, term: this.term, candidate: this.self, group: this.group, epoch: 0, durationMs: this.durationMs, release: true }
    await this.gather(this.group.voters, request, [this.group])
  }

  /**
   * Ask every voter at once and settle as soon as the outcome is known: a quorum of each group
   * granted, or too many refused for that to happen. A dead voter then costs nothing while a
   * quorum answers; the lease counts from before the first send either way.
   */
  private async gather (voters: string[], request: LeaseRequest, groups: LeaseGroup[]): Promise<Array<{ voter: string, reply?: LeaseReply }>> {
    const replies: Array<{ voter: string, reply?: LeaseReply }> = []
    return await new Promise(resolve => {
      const settle = (): void => {
        const answered = new Set(replies.map(r => r.voter))
        const granted = new Set(replies.filter(r => isGrant(r.reply, request.term, this.self)).map(r => r.voter))
        const decided = groups.every(g => g.voters.filter(v => granted.has(v)).length >= quorumOf(g.voters.length)) ||
          groups.some(g => g.voters.filter(v => granted.has(v) || !answered.has(v)).length < quorumOf(g.voters.length))
        if (decided || answered.size === voters.length) resolve([...replies])
      }
      for (const voter of voters) {
        void this.ask(voter, request).catch(() => undefined).then(reply => {
          replies.push({ voter, ...(reply === undefined ? {} : { reply }) })
          settle()
        })
      }
    })
  }

  private async round (term: number, group: LeaseGroup, epoch: number, previous?: LeaseGroup, probe = false): Promise<LeaseRound> {
    const sentAt = this.clock()
    const request: LeaseRequest = { vmId: this.vmId, term, candidate: this.self, group, epoch, durationMs: this.durationMs, ...(probe ? { probe: true } : {}), ...(previous === undefined ? {} : { previous }) }
    const voters = [...new Set([...group.voters, ...(previous?.voters ?? [])])]
    const replies = await this.gather(voters, request, previous === undefined ? [group] : [group, previous])
    const grants = replies.filter(r => isGrant(r.reply, term, this.self)).map(r => r.voter)
    const enough = (g: LeaseGroup): boolean => grants.filter(v => g.voters.includes(v)).length >= quorumOf(g.voters.length)
    let newestTerm = 0
    let newestHolder: string | undefined
    for (const { reply } of replies) {
      if (reply !== undefined && reply.term > newestTerm) {
        newestTerm = reply.term
        newestHolder = reply.holder
      }
    }
    // A holder that sees its term passed to another node never runs the VM again.
    if (this.term > 0 && newestTerm > this.term && newestHolder !== undefined && newestHolder !== this.self) {
      this.supersededBy = { term: newestTerm, holder: newestHolder }
      this.validUntil = 0
    }
    const granted = this.supersededBy === undefined && enough(group) && (previous === undefined || enough(previous))
    return {
      granted,
      validUntil: granted ? sentAt + this.durationMs * (1 - LEASE_DRIFT) : 0,
      grants,
      newestTerm,
      ...(newestHolder === undefined ? {} : { newestHolder }),
      refusals: replies.filter(r => r.reply?.granted !== true).map(r => ({ voter: r.voter, reason: r.reply?.reason ?? 'no answer', ...(r.reply?.waitMs === undefined ? {} : { waitMs: r.reply.waitMs }) }))
    }
  }
}

function isGrant (reply: LeaseReply | undefined, term: number, self: string): boolean {
  return reply?.granted === true && reply.term === term && reply.holder === self
}
