// One node's votes on the leases of the VMs whose groups name it. See lease-terms.ts for why
// these rules give at most one lease holder at any instant.
import type { LeaseGroup, LeaseReply, LeaseRequest, MonotonicClock } from './lease-terms.ts'
import { LEASE_DRIFT, monotonicNow } from './lease-terms.ts'

/** What a voter must not forget across a restart: the term it granted and to whom. */
export interface VoterRecord {
  term: number
  holder: string
  group: LeaseGroup
  durationMs: number
}

/** Durable voter state (term changes only; renewals are not written). */
export interface VoterStore {
  load: () => Record<string, VoterRecord>
  save: (vmId: string, record: VoterRecord | undefined) => void
}

export const memoryVoterStore = (): VoterStore => {
  const records: Record<string, VoterRecord> = {}
  return { load: () => ({ ...records }), save: (vmId, record) => { if (record === undefined) delete records[vmId]; else records[vmId] = record } }
}

interface VoterState extends VoterRecord {
  /** When the last grant to `holder` arrived, on this node's clock. */
  grantedAt: number
  /** The holder gave this term up: a renewal still in flight must not bring it back. */
  released?: boolean
  /** When the release arrived (this node's clock). */
  releasedAt?: number
}

/**
 * A record whose grant ran out this long ago is forgotten (a witness of a VM that died with all
 * its hosts, or was stopped where the witness never heard of it, would keep it for ever).
 * Safe: at most one holder at a time rests on each voter keeping one live grant per VM, and a
 * grant that ran out an hour ago binds nobody: its holder fenced itself when its lease ended.
 * A voter that forgot grants as a new voter would, and the others still hold what they granted.
 */
export const FORGET_EXPIRED_AFTER_MS = 3600_000
/** How often `handle` looks for records to forget. */
const FORGET_SWEEP_MS = 60_000

export interface LeaseVoterOptions {
  self: string
  store?: VoterStore
  clock?: MonotonicClock
  /**
   * A backup of the VM answers whether it should win instead of `candidate` (it holds a newer
   * epoch, or the same one and a better rank) and can take the VM over itself. Witnesses have
   * no opinion. This makes the newest backup the one that resumes, whenever it is reachable.
   */
  preferSelf?: (request: LeaseRequest) => boolean
  /**
   * Any peer may hold the lease, not only a voter: single-instance applications are placed on
   * whichever node fits, while their voters are a fixed group the plan names. Safety is the
   * same: every quorum of the one group intersects every other.
   */
  anyCandidate?: boolean
}

export interface LeaseView {
  vmId: string
  term: number
  holder: string
  group: LeaseGroup
  /** Milliseconds until this voter's grant expires (≤ 0: free). */
  remainingMs: number
  /** The holder released the term this long ago (a handover in progress), if it did. */
  releasedMs?: number
}

export class LeaseVoter {
  private readonly self: string
  private readonly store: VoterStore
  private readonly clock: MonotonicClock
  private readonly preferSelf?: (request: LeaseRequest) => boolean
  private readonly anyCandidate: boolean
  private readonly states = new Map<string, VoterState>()
  private sweptAt: number

  constructor (options: LeaseVoterOptions) {
    this.self = options.self
    this.store = options.store ?? memoryVoterStore()
    this.clock = options.clock ?? monotonicNow
    this.preferSelf = options.preferSelf
    this.anyCandidate = options.anyCandidate === true
    // After a restart the voter cannot know when it last granted: it counts the grant from now,
    // so it frees no term earlier than it would have without the restart.
    const now = this.clock()
    this.sweptAt = now
    for (const [vmId, record] of Object.entries(this.store.load())) this.states.set(vmId, { ...record, grantedAt: now })
  }

  handle (request: LeaseRequest): LeaseReply {
    if (this.clock() - this.sweptAt >= FORGET_SWEEP_MS) this.forgetExpired()
    const state = this.states.get(request.vmId)
    const refuse = (reason: LeaseReply['reason'], waitMs?: number): LeaseReply => ({
      vmId: request.vmId,
      granted: false,
      term: state?.term ?? 0,
      ...(state === undefined ? {} : { holder: state.holder }),
      generation: state?.group.generation ?? 0,
      reason,
      ...(waitMs === undefined ? {} : { waitMs: Math.ceil(waitMs) })
    })
    const mine = request.group.voters.includes(this.self) || request.previous?.voters.includes(this.self) === true
    if (!mine || (!this.anyCandidate && !request.group.voters.includes(request.candidate))) return refuse('not-a-voter')
    const now = this.clock()
    if (state !== undefined) {
      if (request.group.generation < state.group.generation) return refuse('stale-group')
      if (request.term < state.term) return refuse('stale-term')
      if (request.term === state.term) {
        if (request.candidate !== state.holder) return refuse('term-taken')
        if (request.group.generation !== state.group.generation) return refuse('stale-group')
        if (request.release === true) {
          state.grantedAt = -Infinity
          state.released = true
          state.releasedAt = now
          return this.granted(request.vmId, state)
        }
        if (state.released === true) return refuse('stale-term')
        if (request.probe === true) return this.granted(request.vmId, state)
        state.grantedAt = now
        state.durationMs = request.durationMs
        return this.granted(request.vmId, state)
      }
      const remaining = this.remaining(state, now)
      if (request.candidate !== state.holder && remaining > 0) return refuse('lease-held', remaining)
      if (request.candidate !== state.holder && this.preferSelf?.(request) === true) return refuse('better-candidate')
    }
    if (request.probe === true) return { vmId: request.vmId, granted: true, term: request.term, holder: request.candidate, generation: request.group.generation }
    const next: VoterState = { term: request.term, holder: request.candidate, group: request.group, durationMs: request.durationMs, grantedAt: now }
    this.states.set(request.vmId, next)
    this.store.save(request.vmId, { term: next.term, holder: next.holder, group: next.group, durationMs: next.durationMs })
    return this.granted(request.vmId, next)
  }

  /** What this voter knows of a VM's lease. */
  view (vmId: string): LeaseView | undefined {
    const state = this.states.get(vmId)
    if (state === undefined) return undefined
    const now = this.clock()
    return { vmId, term: state.term, holder: state.holder, group: state.group, remainingMs: this.remaining(state, now), ...(state.releasedAt === undefined ? {} : { releasedMs: now - state.releasedAt }) }
  }

  views (): LeaseView[] {
    return [...this.states.keys()].map(vmId => this.view(vmId)!)
  }

  /** The VM is gone (stopped by its owner): its record goes. */
  forget (vmId: string): void {
    this.states.delete(vmId)
    this.store.save(vmId, undefined)
  }

  /** Forgets records whose grant ran out more than FORGET_EXPIRED_AFTER_MS ago; returns how many. */
  forgetExpired (): number {
    const now = this.clock()
    this.sweptAt = now
    let forgotten = 0
    for (const [vmId, state] of this.states) {
      // a released term counts from its release (its grant is cut to nothing then)
      const endedAgo = state.releasedAt !== undefined ? now - state.releasedAt : -this.remaining(state, now)
      if (endedAgo < FORGET_EXPIRED_AFTER_MS) continue
      this.states.delete(vmId)
      this.store.save(vmId, undefined)
      forgotten++
    }
    return forgotten
  }

  private remaining (state: VoterState, now: number): number {
    return state.grantedAt + state.durationMs * (1 + LEASE_DRIFT) - now
  }

  private granted (vmId: string, state: VoterState): LeaseReply {
    return { vmId, granted: true, term: state.term, holder: state.holder, generation: state.group.generation }
  }
}
