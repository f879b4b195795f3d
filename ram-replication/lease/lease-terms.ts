// Leases on a VM: the safety argument every other file of this folder relies on.
//
// A VM's replica group is a list of voters: its primary, its backups and, when they are fewer
// than three, witnesses. A voter grants a term to at most one holder, and grants a newer term
// to another holder only once its grant to the current one has expired on its own clock. A
// holder counts its lease from the moment it SENT the request, so every voter's grant, which
// starts when the request arrives, outlives it. With clock rates within DRIFT of real time:
//
//   holder's lease ends (real time) ≤ sentAt + D          (it counts D·(1 − DRIFT) on its clock)
//   a voter frees the term (real)   ≥ grantedAt + D       (it waits D·(1 + DRIFT) on its clock)
//
// and sentAt ≤ grantedAt, so two quorums (which share a voter) can never both hold a lease at
// one instant. The guest runs only while its host holds the lease: the host stops the vCPU a
// margin before its lease ends. A host that learns a newer term stands down for good. This is
// the classic lease argument (Gray & Cheriton 1989; Chubby; Raft's leader leases); it needs
// bounded clock RATE drift, not synchronised clocks, and never relies on message timing.
//
// Group changes (re-protection after a failover) go through the holder, with a new term and a
// higher generation, granted by a quorum of the old group AND of the new one. A voter that saw
// the new generation refuses the old one, and every old quorum contains such a voter.

/** Bound on how far any node's monotonic clock rate may stray from real time (5 %). */
export const LEASE_DRIFT = 0.05
/** Lease length. Failover after a crash takes about D·(1 + DRIFT) + D/4. */
export const DEFAULT_LEASE_MS = 500
/** The holder stops its guest this long before its lease ends (the pause must complete in it). */
export const DEFAULT_PAUSE_MARGIN_MS = 60
export const MIN_LEASE_MS = 100
export const MAX_LEASE_MS = 60_000
export const MAX_VOTERS = 16

export interface LeaseGroup {
  /** Raised at every change of the voters. */
  generation: number
  /** Peer ids, in rank order: the primary first, then the backups, then witnesses. */
  voters: string[]
}

export interface LeaseRequest {
  vmId: string
  term: number
  /** Who asks for the term (the authenticated peer of the request's stream). */
  candidate: string
  group: LeaseGroup
  /** The candidate's newest applied epoch (0 for the VM's first primary). */
  epoch: number
  durationMs: number
  /**
   * A pre-vote: the voter answers whether it would grant, and changes nothing. A candidate asks
   * for real only after a quorum said yes, so a node that merely lost touch with the holder
   * cannot take votes from a holder the rest of the group still follows.
   */
  probe?: boolean
  /**
   * The holder gives its term up early (a migration hands the VM over): sent only once its
   * guest has stopped for good, so the next holder need not wait for the lease to run out.
   */
  release?: boolean
  /**
   * A group change: the group the holder leaves. Its voters answer too (a quorum of each group
   * must grant), and those left out learn that they are.
   */
  previous?: LeaseGroup
}

export type LeaseRefusal = 'not-a-voter' | 'stale-group' | 'stale-term' | 'term-taken' | 'lease-held' | 'better-candidate' | 'unknown-vm'

export interface LeaseReply {
  vmId: string
  granted: boolean
  /** The voter's current term and holder after handling the request. */
  term: number
  holder?: string
  generation: number
  reason?: LeaseRefusal
  /** With `lease-held`: how long the current grant still runs on the voter's clock. */
  waitMs?: number
}

/** Votes needed out of `voters`. */
export function quorumOf (voters: number): number {
  return Math.floor(voters / 2) + 1
}

/** Wall clock for leases: monotonic, in milliseconds. Injected so tests can drive it. */
export type MonotonicClock = () => number
export const monotonicNow: MonotonicClock = () => performance.now()
