// The commit-reveal round engine. One instance per node; every node observes every round on
// the rounds topic, committee members also vote. A round is one attempt on one key:
//   1. proposal: the attempt's proposer (the members take turns; or any candidate for
//      operations whose input is derived from the key) publishes the input, with the polka
//      that justifies it when it re-proposes an input locked in an earlier attempt. Each node
//      checks the committee, seed and f against its own certified state.
//   2. commit: each member that may (locks.ts) evaluates the input (the operation validates
//      its content) and publishes a signed commitment H(result ‖ nonce ‖ peerId ‖ round),
//      recorded in its vote store before it goes out.
//   3. reveal: opens here once 2f+1 commits are held (a polka); commits that arrive after
//      that are not counted, so a member that waits for someone's reveal to copy it gains
//      nothing. A member reveals only in the attempt of its latest commit and locks on the
//      input first (recorded before the reveal goes out).
//   4. 2f+1 matching reveals, each opening a counted commitment, form a certificate.
// Attempts: run() moves to the next attempt when one takes too long (the budget grows with the
// attempt, so some attempt outlasts any delay once the network is stable), and jumps ahead
// when f+1 members are seen in a later attempt (one of them is honest). Timeouts decide only
// when to try again, never what is certified: safety is the lock argument in locks.ts.
// Faults are slashed only with self-contained evidence (fault-rules.ts); evidence from the
// network is checked against this node's certified state (committee, seed, f) first.
import { toHex, equalBytes, randomBytesOf, sha256 } from '../crypto/index.ts'
import { RoundFailedError, ConsensusMessageError, CertificateInvalidError, EvidenceInvalidError, type RoundFailureReason } from './errors.ts'
import { selectCommittee, quorumOf, minimumCommittee, proposerOf, shortfall } from './committee.ts'
import { roundIdOf, commitmentOf, inputDigestOf, type RoundHeader } from './round.ts'
import { signMessage, decodeMessage, decodeMessageOf, MAX_ATTEMPT, type Signed, type MessageSigner, type ProposalBody, type CommitBody, type RevealBody, type Polka } from './messages.ts'
import { buildCertificate, verifyCertificate, opens, signersOf, type Certificate } from './certificate.ts'
import { buildEvidence, verifyEvidence, MAX_EVIDENCE_BYTES, type Evidence } from './evidence.ts'
import { TrustLedger } from './trust-ledger.ts'
import { DifferentialUptime } from './uptime.ts'
import { RoundDeadlines, type DeadlineOptions } from './deadlines.ts'
import { ConsensusMetrics } from './metrics.ts'
import { HonestConduct, type MemberConduct, type ConductActions, type Ballot } from './conduct.ts'
import { consensusTopics, type ConsensusPubSub } from './pubsub.ts'
import { encodeAnnouncement, decodeAnnouncement, claimOf } from './announcement.ts'
import { quietLogger, type ConsensusLogger } from './logger.ts'
import { MemoryVoteStore, commitRefusal, mayReveal, type VoteStore, type KeyVotes } from './locks.ts'
import { realTimers, type Timers } from './timers.ts'
import { slotAt, type AttemptSlots } from './attempts.ts'
import type { FaultReason } from './fault-rules.ts'

/** The certified state a round's committee is drawn from. */
export interface RoundContext {
  candidates: readonly string[]
  seed: Uint8Array
}

export interface Operation {
  readonly name: string
  /** Deterministic on the same input: a valid reveal of another result is a fault (dissent). */
  readonly objective: boolean
  /** Who may open a round: the attempt's proposer, or any candidate (inputs derived from the key). */
  readonly proposers: 'leader' | 'candidates'
  /** Committee inputs for a key from certified state; undefined while this node cannot know them. */
  context: (key: string) => RoundContext | undefined
  /** Why this node must not vote on this key now, or undefined. */
  refusal?: (key: string) => RoundFailureReason | undefined
  /**
   * What breaks the operation's deterministic rules in this input, judged only from certified
   * state (no clock, no local view), or undefined: a proposer whose signed input breaks them is
   * slashed with its proposal as evidence. Undefined also when the state is not held here.
   */
  violation?: (key: string, input: Uint8Array) => string | undefined
  /**
   * Validates the input and computes the result; throws for invalid input (this member then
   * does not vote). `justified`: 2f+1 members already committed to this input in an earlier
   * attempt (or this member is locked on it), so checks against the member's own clock, which
   * only keep fresh proposals honest, no longer apply.
   */
  evaluate: (key: string, input: Uint8Array, signal: AbortSignal, justified: boolean) => Promise<Uint8Array>
  /** A certificate for this operation was formed or received and verified. */
  certified?: (certificate: Certificate, input: Uint8Array | undefined) => void
}

export interface RoundEngineOptions {
  signer: MessageSigner
  pubsub: ConsensusPubSub
  /** `mycelium/<networkId>`; topics are `<prefix>/bft/...`. */
  topicPrefix: string
  /** Faults tolerated, as configured; quorum 2f+1 of committees of max(3f+1, committeeSize). Default 1. */
  f?: number
  committeeSize?: number
  /** Clock and timers (default: real ones). */
  timers?: Timers
  /** @deprecated use timers; a clock alone still works with real timers. */
  clock?: () => number
  /** Where this member's votes are kept across restarts (default: memory). */
  votes?: VoteStore
  /** Nonces (default: crypto random). */
  random?: (length: number) => Uint8Array
  log?: ConsensusLogger
  deadlines?: DeadlineOptions
  /** How long a node waits for an attempt's proposal before moving to the next attempt. */
  proposalWaitMs?: number
  /** This node's behaviour as a member (default honest). */
  conduct?: () => MemberConduct
  ledger?: TrustLedger
  uptime?: DifferentialUptime
  metrics?: ConsensusMetrics
  /** True while this node has a live connection to the peer (for status output). */
  isConnected?: (peerId: string) => boolean
}

interface RoundState {
  id: Uint8Array
  idHex: string
  header: RoundHeader
  op: Operation
  proposal: Signed<ProposalBody>
  input: Uint8Array
  openedAt: number
  /** Commits counted: those that arrived before the polka was held here. */
  commits: Map<string, Signed<CommitBody>>
  /** Commits that arrived after: checked for equivocation, never counted. */
  late: Map<string, Signed<CommitBody>>
  reveals: Map<string, Signed<RevealBody>>
  faulty: Set<string>
  dissenters: Set<string>
  rewarded: Set<string>
  /** Members whose commitment came before any reveal was seen here: only their votes earn trust. */
  early: Set<string>
  revealOpen: boolean
  certificate?: Certificate
  stalled: boolean
  closed: boolean
  voting: boolean
  conduct?: MemberConduct
  cancels: Array<() => void>
  abort: AbortController
}

interface KeyState {
  /** The latest attempt each committee member was seen in (signed messages only). */
  seen: Map<string, number>
  /** The highest polka seen here: what a proposer re-proposes. */
  valid?: { attempt: number, proposal: Signed<ProposalBody>, commits: Array<Signed<CommitBody>> }
  /** When this node last re-published its lock's justification. */
  lockSentAt?: number
}

type AttemptOutcome = { t: 'certified' } | { t: 'settled' } | { t: 'timeout' } | { t: 'aborted' } | { t: 'skip', to: number }

const NO_STATE = 'no certified state for its key here'
const PENDING_ROUNDS_MAX = 128
const PENDING_TTL_MS = 30_000
const ROUND_KEEP_MS = 60_000
const CERTIFIED_KEYS_MAX = 4096
const EVIDENCE_KEPT = 1024
const KEYS_REMEMBERED = 256
/** Open rounds one proposer may have on one key; a flood of attempts evicts only its own. */
const ROUNDS_PER_PROPOSER = 4

function remember<V> (map: Map<string, V>, key: string, value: V, max = KEYS_REMEMBERED): void {
  if (map.has(key)) map.delete(key)
  else if (map.size >= max) map.delete(map.keys().next().value as string)
  map.set(key, value)
}

export class RoundEngine {
  readonly self: string
  readonly f: number
  readonly committeeSize: number
  readonly ledger: TrustLedger
  readonly uptime: DifferentialUptime
  readonly metrics: ConsensusMetrics
  readonly deadlines: RoundDeadlines
  readonly timers: Timers
  private readonly o: RoundEngineOptions
  private readonly topics: ReturnType<typeof consensusTopics>
  private readonly log: ConsensusLogger
  private readonly votes: VoteStore
  private readonly random: (length: number) => Uint8Array
  private readonly ops = new Map<string, Operation>()
  private readonly rounds = new Map<string, RoundState>()
  private readonly pending = new Map<string, { at: number, messages: Signed[] }>()
  private readonly certifiedKeys = new Map<string, { certificate: Certificate, input?: Uint8Array }>()
  private readonly keys = new Map<string, KeyState>()
  private readonly changeListeners = new Set<() => void>()
  private readonly unsubscribes: Array<() => void> = []
  private readonly evidenceStore = new Map<string, Uint8Array>()
  private readonly proposals = new Map<string, Signed<ProposalBody>>()
  /** Proposals that came before this node held their certified state, by round id (see refresh()). */
  private readonly early = new Map<string, { at: number, proposal: Signed<ProposalBody> }>()
  /** The attempt this node's run() is on, per key. */
  private readonly runAttempt = new Map<string, number>()
  private running = false

  constructor (options: RoundEngineOptions) {
    this.o = options
    this.self = options.signer.peerId
    this.f = options.f ?? 1
    this.committeeSize = Math.max(minimumCommittee(this.f), options.committeeSize ?? minimumCommittee(this.f))
    this.timers = options.timers ?? realTimers(options.clock)
    this.log = options.log ?? quietLogger
    this.votes = options.votes ?? new MemoryVoteStore()
    this.random = options.random ?? randomBytesOf
    const clock = this.timers.now
    this.ledger = options.ledger ?? new TrustLedger({ clock })
    this.uptime = options.uptime ?? new DifferentialUptime({ clock })
    this.metrics = options.metrics ?? new ConsensusMetrics()
    this.deadlines = new RoundDeadlines(options.deadlines)
    this.topics = consensusTopics(options.topicPrefix)
    this.ledger.onSlash((_peer, slash) => this.metrics.slashed(slash.reason))
  }

  private now (): number {
    return this.timers.now()
  }

  register (op: Operation): void {
    this.ops.set(op.name, op)
  }

  start (): void {
    if (this.running) return
    this.running = true
    this.unsubscribes.push(this.o.pubsub.subscribe(this.topics.rounds, (data) => this.receive(data)))
    this.unsubscribes.push(this.o.pubsub.subscribe(this.topics.evidence, (data) => this.receiveEvidence(data)))
    // Forged evidence is refused at the gossip layer too, so its sender is marked and it spreads no further.
    const stopValidating = this.o.pubsub.validate?.(this.topics.evidence, (data) => this.judgeEvidence(data))
    if (stopValidating !== undefined) this.unsubscribes.push(stopValidating)
    this.unsubscribes.push(this.o.pubsub.subscribe(this.topics.certified, (data) => this.receiveCertified(data)))
    const stopJudgingCertified = this.o.pubsub.validate?.(this.topics.certified, (data) => this.judgeCertified(data))
    if (stopJudgingCertified !== undefined) this.unsubscribes.push(stopJudgingCertified)
  }

  stop (): void {
    this.running = false
    for (const u of this.unsubscribes.splice(0)) u()
    for (const s of this.rounds.values()) this.close(s)
    this.rounds.clear()
    this.pending.clear()
    this.early.clear()
    this.notify()
  }

  /** The committee of a key (the same for every attempt), in ranking order; empty without 3f+1 candidates. */
  committeeOf (op: string, key: string): string[] | undefined {
    const ctx = this.ops.get(op)?.context(key)
    return ctx === undefined ? undefined : selectCommittee(ctx.candidates, ctx.seed, this.f, this.committeeSize)
  }

  certificateOf (key: string): Certificate | undefined {
    return this.certifiedKeys.get(key)?.certificate
  }

  /** Why a key cannot have a committee here (too few candidates for the configured f), or undefined. */
  shortfallOf (op: string, key: string): string | undefined {
    const ctx = this.ops.get(op)?.context(key)
    return ctx === undefined ? undefined : shortfall(ctx.candidates, this.f)
  }

  /**
   * Runs attempts on `key` until one is certified: the attempt's proposer (if this node)
   * proposes; a node moves on when an attempt outlasts its budget, or jumps to a later attempt
   * f+1 members are seen in.
   */
  async run (opName: string, key: string, input: (attempt: number) => Promise<Uint8Array>, options: { signal?: AbortSignal, maxAttempts?: number, firstAttempt?: number, slots?: AttemptSlots } = {}): Promise<Certificate> {
    const op = this.ops.get(opName)
    if (op === undefined) throw new TypeError(`unknown operation ${opName}`)
    const slots = options.slots
    const maxAttempts = options.maxAttempts ?? (slots === undefined ? 4 : MAX_ATTEMPT)
    let attempt = Math.max(options.firstAttempt ?? 0, this.votes.get(key)?.committed?.attempt ?? 0)
    let last: RoundFailureReason = 'no-proposal'
    for (let tries = 0; tries < maxAttempts && attempt <= MAX_ATTEMPT; tries++) {
      if (options.signal?.aborted === true) throw new RoundFailedError('aborted', attempt)
      const done = this.certifiedKeys.get(key)
      if (done !== undefined) return done.certificate
      const refusal = op.refusal?.(key)
      if (refusal === 'read-only' || refusal === 'already-certified') throw new RoundFailedError(refusal, attempt)
      const ctx = op.context(key)
      if (ctx === undefined) throw new RoundFailedError('invalid-input', attempt, `no certified state for ${key}`)
      const committee = selectCommittee(ctx.candidates, ctx.seed, this.f, this.committeeSize)
      if (committee.length === 0) throw new RoundFailedError('not-enough-candidates', attempt, shortfall(ctx.candidates, this.f))
      let endsAt: number | undefined
      if (slots !== undefined) {
        const slot = slotAt(slots, committee.length, this.now())
        attempt = Math.max(attempt, slot.attempt)
        endsAt = slot.endsAt
      }
      remember(this.runAttempt, key, attempt)
      this.offerVotes(key)
      const proposer = op.proposers === 'leader' ? proposerOf(committee, attempt) === this.self : ctx.candidates.includes(this.self)
      if (proposer && refusal === undefined) await this.proposeAttempt(op, key, attempt, committee, ctx, input)
      const budget = endsAt === undefined || endsAt <= this.now() ? this.attemptMs(tries) : endsAt - this.now()
      const outcome = await this.waitAttempt(op, key, attempt, budget, options.signal)
      if (outcome.t === 'certified') return (this.certifiedKeys.get(key) as { certificate: Certificate }).certificate
      if (outcome.t === 'settled') throw new RoundFailedError('already-certified', attempt, `${key} was settled elsewhere`)
      if (outcome.t === 'aborted') throw new RoundFailedError('aborted', attempt)
      const round = this.roundAt(key, attempt)
      last = round === undefined ? 'no-proposal' : 'no-quorum'
      if (round !== undefined) round.stalled = true
      attempt = outcome.t === 'skip' ? outcome.to : attempt + 1
    }
    this.metrics.roundFailed(opName, last)
    throw new RoundFailedError(last, attempt - 1, `no certificate for ${key} after ${maxAttempts} attempts (${last})`)
  }

  /** The attempt a restarted or lagging caller should continue from on this key. */
  nextAttemptOf (key: string): number {
    const c = this.votes.get(key)?.committed?.attempt
    return Math.max(c === undefined ? 0 : c + 1, this.skipTarget(key, -1) ?? 0)
  }

  private roundAt (key: string, attempt: number): RoundState | undefined {
    for (const s of this.rounds.values()) if (s.header.key === key && s.header.attempt === attempt) return s
    return undefined
  }

  /**
   * Proposes in `attempt`: the same proposal again if this node already made one there (a
   * restart), else the highest polka's input with that polka, else a fresh input.
   */
  private async proposeAttempt (op: Operation, key: string, attempt: number, committee: string[], ctx: RoundContext, input: (attempt: number) => Promise<Uint8Array>): Promise<void> {
    const held = this.votes.get(key)
    if (held?.proposed?.attempt === attempt) {
      const again = decodeMessageOf(held.proposed.proposal, 'proposal')
      this.publish(this.topics.rounds, again.bytes)
      this.onProposal(again)
      return
    }
    const justification = this.justificationFor(key)
    let body: Uint8Array
    let polka: Polka | null = null
    if (justification !== undefined) {
      body = justification.input
      polka = { attempt: justification.attempt, commits: justification.commits }
    } else {
      body = await input(attempt)
    }
    const header: RoundHeader = { op: op.name, key, seed: ctx.seed, inputDigest: inputDigestOf(body), committee, attempt, f: this.f }
    const proposal = signMessage(this.o.signer, { t: 'proposal', from: this.self, header, input: body, polka })
    const latest = this.votes.get(key)
    this.votes.put(key, { ...latest, proposed: { attempt, proposal: proposal.bytes } })
    this.publish(this.topics.rounds, proposal.bytes)
    this.onProposal(proposal)
  }

  /** The highest polka this node knows on the key (its own lock or one it saw). */
  private justificationFor (key: string): { attempt: number, input: Uint8Array, commits: Uint8Array[] } | undefined {
    const lock = this.votes.get(key)?.lock
    const valid = this.keys.get(key)?.valid
    if (valid !== undefined && (lock === undefined || valid.attempt >= lock.attempt)) {
      return { attempt: valid.attempt, input: valid.proposal.body.input, commits: valid.commits.map(c => c.bytes) }
    }
    if (lock === undefined) return undefined
    return { attempt: lock.attempt, input: decodeMessageOf(lock.proposal, 'proposal').body.input, commits: lock.commits }
  }

  /** The bytes of a slash's evidence (own or gossiped), by evidence id, for recent slashes. */
  evidence (id: string): Uint8Array | undefined {
    return this.evidenceStore.get(id)
  }

  private keepEvidence (id: string, bytes: Uint8Array): void {
    remember(this.evidenceStore, id, bytes, EVIDENCE_KEPT)
  }

  /**
   * Rounds currently known (not closed yet), for status output. `failed`: this node's attempt
   * on it ran out of time without a certificate (the round stays listed until it is closed).
   */
  activeRounds (): Array<{ op: string, key: string, attempt: number, committee: string[], commits: number, reveals: number, certified: boolean, failed: boolean }> {
    return [...this.rounds.values()].filter(s => !s.closed).map(s => ({ op: s.header.op, key: s.header.key, attempt: s.header.attempt, committee: s.header.committee, commits: s.commits.size, reveals: s.reveals.size, certified: s.certificate !== undefined, failed: s.stalled }))
  }

  /**
   * How long attempt number `tries` (counted from where this run started) may take: the wait
   * for its proposal and its two phases, growing with every attempt that failed.
   */
  private attemptMs (tries: number): number {
    const phase = this.deadlines.phaseMs()
    return Math.round((Math.max(this.o.proposalWaitMs ?? 1000, phase) + 2 * phase) * (1 + tries / 2))
  }

  /**
   * Something the operations' state depends on changed (e.g. an epoch was adopted from a peer).
   * Proposals that came before that state are taken up now, and rounds this node could not vote
   * in yet are offered the vote again.
   */
  refresh (): void {
    const now = this.now()
    for (const [id, held] of this.early) {
      if (now - held.at > PENDING_TTL_MS) this.early.delete(id)
      else if (this.ops.get(held.proposal.body.header.op)?.context(held.proposal.body.header.key) !== undefined) {
        this.early.delete(id)
        this.onProposal(held.proposal)
      }
    }
    for (const s of [...this.rounds.values()]) {
      if (!s.voting && !s.closed && s.certificate === undefined && s.header.committee.includes(this.self)) void this.vote(s)
    }
    this.notify()
  }

  /**
   * The attempt this member is at on a key: where its run() is, where f+1 members are, or its
   * latest commit. It votes no further than one attempt beyond: a Byzantine proposer that opens
   * attempt 4000 cannot make honest members commit there and use up the attempts.
   */
  private currentAttempt (key: string): number {
    return Math.max(this.runAttempt.get(key) ?? 0, this.skipTarget(key, -1) ?? 0, this.votes.get(key)?.committed?.attempt ?? 0)
  }

  /** Offers the vote again in the open rounds on `key` this member has not voted in. */
  private offerVotes (key: string): void {
    for (const s of [...this.rounds.values()]) {
      if (s.header.key === key && !s.voting && !s.closed && s.certificate === undefined && s.header.committee.includes(this.self)) void this.vote(s)
    }
  }

  /** The attempt f+1 committee members were seen in, if later than `attempt` (one of them is honest). */
  private skipTarget (key: string, attempt: number): number | undefined {
    const seen = this.keys.get(key)?.seen
    if (seen === undefined || seen.size < this.f + 1) return undefined
    const latest = [...seen.values()].sort((a, b) => b - a)[this.f]
    return latest > attempt ? latest : undefined
  }

  private keyState (key: string): KeyState {
    let k = this.keys.get(key)
    if (k === undefined) {
      k = { seen: new Map() }
      remember(this.keys, key, k)
    }
    return k
  }

  private noteAttempt (key: string, member: string, attempt: number): void {
    const seen = this.keyState(key).seen
    if ((seen.get(member) ?? -1) >= attempt) return
    const before = this.skipTarget(key, -1)
    seen.set(member, attempt)
    if (this.skipTarget(key, -1) !== before) this.offerVotes(key)
  }

  private waitAttempt (op: Operation, key: string, attempt: number, budgetMs: number, signal?: AbortSignal): Promise<AttemptOutcome> {
    return new Promise(resolve => {
      let cancel: (() => void) | undefined
      let timedOut = false
      const check = (): void => {
        if (this.certifiedKeys.has(key)) return finish({ t: 'certified' })
        if (op.refusal?.(key) === 'already-certified') return finish({ t: 'settled' })
        if (signal?.aborted === true || !this.running) return finish({ t: 'aborted' })
        const to = this.skipTarget(key, attempt)
        if (to !== undefined) return finish({ t: 'skip', to })
        if (timedOut) return finish({ t: 'timeout' })
      }
      const finish = (outcome: AttemptOutcome): void => {
        this.changeListeners.delete(check)
        signal?.removeEventListener('abort', check)
        cancel?.()
        resolve(outcome)
      }
      this.changeListeners.add(check)
      signal?.addEventListener('abort', check)
      cancel = this.timers.after(budgetMs, () => { timedOut = true; check() })
      check()
    })
  }

  private notify (): void {
    for (const l of [...this.changeListeners]) l()
  }

  private publish (topic: string, bytes: Uint8Array): void {
    if (!this.running) return
    this.o.pubsub.publish(topic, bytes).catch((err: Error) => this.log.debug({ err: err.message, topic }, 'consensus publish failed'))
  }

  // ---- edge: every incoming message is decoded and checked here, once ----

  private receive (data: Uint8Array): void {
    let m: Signed
    try {
      m = decodeMessage(data)
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'consensus message rejected')
      return
    }
    switch (m.body.t) {
      case 'proposal': return this.onProposal(m as Signed<ProposalBody>)
      case 'commit':
      case 'reveal': {
        const s = this.rounds.get(toHex(m.body.round))
        if (s === undefined) return this.hold(m)
        return m.body.t === 'commit' ? this.onCommit(s, m as Signed<CommitBody>) : this.onReveal(s, m as Signed<RevealBody>)
      }
      default:
    }
  }

  private hold (m: Signed): void {
    const id = toHex((m.body as CommitBody).round)
    const now = this.now()
    for (const [k, v] of this.pending) if (now - v.at > PENDING_TTL_MS) this.pending.delete(k)
    let p = this.pending.get(id)
    if (p === undefined) {
      if (this.pending.size >= PENDING_ROUNDS_MAX) return
      p = { at: now, messages: [] }
      this.pending.set(id, p)
    }
    if (p.messages.length < 4 * 64) p.messages.push(m)
  }

  /** The polka a proposal carries, if it is 2f+1 valid commits of the same input in an earlier attempt. */
  private checkPolka (h: RoundHeader, polka: Polka): Array<Signed<CommitBody>> | undefined {
    if (polka.attempt >= h.attempt) return undefined
    const round = roundIdOf({ ...h, attempt: polka.attempt })
    const members = new Set(h.committee)
    const commits = new Map<string, Signed<CommitBody>>()
    for (const bytes of polka.commits) {
      let c: Signed<CommitBody>
      try {
        c = decodeMessageOf(bytes, 'commit')
      } catch {
        return undefined
      }
      if (!members.has(c.body.from) || commits.has(c.body.from) || !equalBytes(c.body.round, round)) return undefined
      commits.set(c.body.from, c)
    }
    return commits.size >= quorumOf(h.f, h.committee.length) ? [...commits.values()] : undefined
  }

  private onProposal (p: Signed<ProposalBody>): void {
    const h = p.body.header
    const op = this.ops.get(h.op)
    if (op === undefined) return
    const ctx = op.context(h.key)
    if (ctx === undefined) {
      // This node does not hold the certified state yet (e.g. it is still adopting the previous
      // epoch): the proposal is kept until refresh() says the state changed.
      const id = toHex(roundIdOf(h))
      if (!this.early.has(id)) remember(this.early, id, { at: this.now(), proposal: p }, PENDING_ROUNDS_MAX)
      return this.log.debug({ key: h.key }, 'proposal for a key without certified state (kept)')
    }
    const committee = selectCommittee(ctx.candidates, ctx.seed, this.f, this.committeeSize)
    if (committee.length === 0 || !equalBytes(ctx.seed, h.seed) || h.f !== this.f) return this.log.debug({ key: h.key }, 'proposal with another seed or f')
    if (committee.length !== h.committee.length || committee.some((m, i) => m !== h.committee[i])) return this.log.debug({ key: h.key }, 'proposal with a wrong committee')
    const mayPropose = op.proposers === 'leader' ? p.body.from === proposerOf(committee, h.attempt) : ctx.candidates.includes(p.body.from)
    if (!mayPropose) return this.log.debug({ key: h.key, from: p.body.from }, 'proposal from a peer that may not propose')
    if (!equalBytes(inputDigestOf(p.body.input), h.inputDigest)) return
    const polka = p.body.polka === null ? undefined : this.checkPolka(h, p.body.polka)
    if (p.body.polka !== null && polka === undefined) return this.log.debug({ key: h.key }, 'proposal with an invalid polka')
    // A proposer that opens one attempt with two different inputs splits the committee: equivocation.
    const slot = `${h.op}|${h.key}|${h.attempt}|${p.body.from}`
    const earlier = this.proposals.get(slot)
    if (earlier !== undefined && !equalBytes(earlier.body.header.inputDigest, h.inputDigest)) {
      this.report(buildEvidence('equivocate', p.body.from, earlier.body.header, [earlier, p]))
      return
    }
    if (earlier === undefined) remember(this.proposals, slot, p, PENDING_ROUNDS_MAX * 8)
    if (this.certifiedKeys.has(h.key)) {
      this.metrics.staleProposal()
      return this.log.debug({ key: h.key, attempt: h.attempt }, 'proposal for a certified key ignored')
    }
    const id = roundIdOf(h)
    const idHex = toHex(id)
    if (this.rounds.has(idHex)) return
    this.noteAttempt(h.key, p.body.from, h.attempt)
    this.uptime.seen(p.body.from)
    const bad = op.violation?.(h.key, p.body.input)
    if (bad !== undefined) {
      this.log.warn({ key: h.key, proposer: p.body.from, violation: bad }, 'proposal breaks the rules; its proposer is slashed')
      this.report(buildEvidence('bad-proposal', p.body.from, h, [p]))
      return
    }
    this.evictFlood(h.key, p.body.from)
    const s: RoundState = {
      id, idHex, header: h, op, proposal: p, input: p.body.input, openedAt: this.now(),
      commits: new Map(), late: new Map(), reveals: new Map(), faulty: new Set(), dissenters: new Set(), rewarded: new Set(), early: new Set(),
      revealOpen: false, stalled: false, closed: false, voting: false, cancels: [], abort: new AbortController()
    }
    this.rounds.set(idHex, s)
    if (polka !== undefined) this.learnPolka(h.key, p, polka, p.body.polka?.attempt ?? 0)
    this.notify()
    if (h.committee.includes(this.self)) void this.vote(s)
    const held = this.pending.get(idHex)
    this.pending.delete(idHex)
    for (const m of held?.messages ?? []) {
      if (m.body.t === 'commit') this.onCommit(s, m as Signed<CommitBody>)
      else this.onReveal(s, m as Signed<RevealBody>)
    }
  }

  /** A proposer flooding attempts on a key keeps at most a few open rounds; its oldest go. */
  private evictFlood (key: string, proposer: string): void {
    const mine = [...this.rounds.values()].filter(s => s.header.key === key && s.proposal.body.from === proposer && s.certificate === undefined)
    if (mine.length < ROUNDS_PER_PROPOSER) return
    mine.sort((a, b) => a.header.attempt - b.header.attempt)
    for (const s of mine.slice(0, mine.length - ROUNDS_PER_PROPOSER + 1)) {
      this.close(s)
      this.rounds.delete(s.idHex)
    }
  }

  /** Records a polka (2f+1 commits of one input in one attempt) as the key's highest, if it is. */
  private learnPolka (key: string, proposal: Signed<ProposalBody>, commits: Array<Signed<CommitBody>>, attempt: number): void {
    const k = this.keyState(key)
    if (k.valid !== undefined && k.valid.attempt >= attempt) return
    // A later proposer re-proposes this proposal's input with these commits (a polka carried
    // inside a later proposal has the same input, so that proposal serves as well).
    k.valid = { attempt, proposal, commits }
  }

  private async vote (s: RoundState): Promise<void> {
    if (s.voting || s.closed) return
    const key = s.header.key
    const opRefusal = s.op.refusal?.(key) ?? (this.certifiedKeys.has(key) ? 'already-certified' : undefined)
    if (opRefusal !== undefined) return this.log.debug({ key, attempt: s.header.attempt, refusal: opRefusal }, 'not voting in round')
    if (s.header.attempt > this.currentAttempt(key) + 1) return this.log.debug({ key, attempt: s.header.attempt }, 'round too far ahead; kept until this member gets there')
    const held = this.votes.get(key)
    // This member committed in this very round before a restart: it resumes with its ballot.
    if (held?.committed !== undefined && equalBytes(held.committed.round, s.id)) {
      s.voting = true
      const ballot = { result: held.committed.result, nonce: held.committed.nonce }
      s.conduct = new HonestConduct(ballot)
      this.publishCommit(s, ballot)
      if (s.revealOpen) s.conduct.revealPhase(this.actions(s))
      return
    }
    const polkaAttempt = s.proposal.body.polka === null ? undefined : s.proposal.body.polka.attempt
    const refusal = commitRefusal(held, s.header.attempt, s.header.inputDigest, polkaAttempt)
    if (refusal !== undefined) {
      this.log.debug({ key, attempt: s.header.attempt, refusal }, 'not voting in round')
      if (held?.lock !== undefined && !equalBytes(held.lock.inputDigest, s.header.inputDigest)) this.sendLock(key, held)
      return
    }
    s.voting = true
    let result: Uint8Array
    try {
      const justified = polkaAttempt !== undefined || (held?.lock !== undefined && equalBytes(held.lock.inputDigest, s.header.inputDigest))
      result = await s.op.evaluate(key, s.input, s.abort.signal, justified)
    } catch (err) {
      this.log.warn({ key, err: (err as Error).message }, 'round input rejected; not voting')
      return
    }
    if (s.closed) return
    // Evaluation is asynchronous: another round on the key may have taken this member's vote meanwhile.
    const now = this.votes.get(key)
    if (commitRefusal(now, s.header.attempt, s.header.inputDigest, polkaAttempt) !== undefined) return
    // Locked on this input: the member's result is the one it locked on (its verdict does not drift).
    if (now?.lock !== undefined && equalBytes(now.lock.inputDigest, s.header.inputDigest)) result = now.lock.result
    s.conduct = (this.o.conduct ?? (() => new HonestConduct()))()
    s.conduct.evaluated(result, this.actions(s))
    if (s.revealOpen) s.conduct.revealPhase(this.actions(s))
  }

  /**
   * A member locked on another input than the one proposed re-publishes its lock's proposal and
   * polka (at most once an attempt time): a later proposer learns it and re-proposes it, which
   * is how the network gets unstuck after a partition lost those messages.
   */
  private sendLock (key: string, held: KeyVotes): void {
    const lock = held.lock
    const k = this.keyState(key)
    if (lock === undefined || (k.lockSentAt !== undefined && this.now() - k.lockSentAt < this.attemptMs(0))) return
    k.lockSentAt = this.now()
    this.publish(this.topics.rounds, lock.proposal)
    for (const c of lock.commits) this.publish(this.topics.rounds, c)
  }

  private publishCommit (s: RoundState, b: Ballot): void {
    const c = signMessage(this.o.signer, { t: 'commit', from: this.self, round: s.id, commitment: commitmentOf(b.result, b.nonce, this.self, s.id) })
    this.publish(this.topics.rounds, c.bytes)
    this.onCommit(s, c)
  }

  private actions (s: RoundState): ConductActions {
    return {
      nonce: () => this.random(32),
      commit: (b: Ballot) => {
        if (s.closed) return
        const key = s.header.key
        const held = this.votes.get(key)
        // Written before the commit goes out: after a restart this member neither commits again
        // in this attempt nor in an earlier one, and can still open its commitment.
        if (held?.committed === undefined || held.committed.attempt < s.header.attempt) {
          this.votes.put(key, { ...held, committed: { attempt: s.header.attempt, round: s.id, inputDigest: s.header.inputDigest, result: b.result, nonce: b.nonce } })
        }
        this.publishCommit(s, b)
      },
      reveal: (b: Ballot) => {
        if (s.closed || !s.revealOpen) return
        const key = s.header.key
        const held = this.votes.get(key)
        if (s.conduct instanceof HonestConduct && !mayReveal(held, s.header.attempt, s.id)) return
        if (held?.lock === undefined || held.lock.attempt < s.header.attempt) {
          this.votes.put(key, { ...held, lock: { attempt: s.header.attempt, inputDigest: s.header.inputDigest, result: b.result, proposal: s.proposal.bytes, commits: [...s.commits.values()].map(c => c.bytes) } })
        }
        const r = signMessage(this.o.signer, { t: 'reveal', from: this.self, round: s.id, result: b.result, nonce: b.nonce })
        this.publish(this.topics.rounds, r.bytes)
        this.onReveal(s, r)
      }
    }
  }

  private onCommit (s: RoundState, c: Signed<CommitBody>): void {
    const from = c.body.from
    if (!s.header.committee.includes(from)) return
    this.uptime.seen(from)
    this.noteAttempt(s.header.key, from, s.header.attempt)
    const earlier = s.commits.get(from) ?? s.late.get(from)
    if (earlier !== undefined) {
      if (!equalBytes(earlier.body.commitment, c.body.commitment)) this.slash(s, 'equivocate', from, [earlier, c])
      return
    }
    if (s.revealOpen || s.closed) {
      s.late.set(from, c)
      return
    }
    s.commits.set(from, c)
    if (s.reveals.size === 0) s.early.add(from)
    if (from !== this.self) this.deadlines.observe(this.now() - s.openedAt)
    if (s.commits.size >= quorumOf(s.header.f, s.header.committee.length)) this.openReveal(s)
    else this.notify()
  }

  /** The commit phase closed here: 2f+1 commits are held. */
  private openReveal (s: RoundState): void {
    if (s.revealOpen || s.closed) return
    s.revealOpen = true
    this.learnPolka(s.header.key, s.proposal, [...s.commits.values()], s.header.attempt)
    s.conduct?.revealPhase(this.actions(s))
    this.tally(s)
    this.notify()
  }

  private onReveal (s: RoundState, r: Signed<RevealBody>): void {
    const from = r.body.from
    if (!s.header.committee.includes(from)) return
    this.uptime.seen(from)
    this.noteAttempt(s.header.key, from, s.header.attempt)
    const earlier = s.reveals.get(from)
    if (earlier !== undefined) {
      if (!equalBytes(earlier.body.result, r.body.result) || !equalBytes(earlier.body.nonce, r.body.nonce)) this.slash(s, 'equivocate', from, [earlier, r])
      return
    }
    s.reveals.set(from, r)
    const commit = s.commits.get(from) ?? s.late.get(from)
    if (commit !== undefined && !opens(commit.body, r.body)) this.slash(s, 'mismatch', from, [commit, r])
    if (from !== this.self && commit !== undefined && opens(commit.body, r.body)) s.conduct?.peerRevealed?.({ result: r.body.result, nonce: r.body.nonce }, this.actions(s))
    this.tally(s)
  }

  /**
   * Votes: reveals opening their member's commitment. A commitment that came after the reveal
   * phase opened here still opens its reveal (a slow honest member's vote must count, or a
   * certificate could never form where the polka and the reveals differ) but earns nothing; nor
   * does one that came after the first reveal seen here. That is where a copier's commitment
   * lands (it needs a reveal to copy), so copying gains no trust.
   */
  private validVotes (s: RoundState): Array<{ commit: Signed<CommitBody>, reveal: Signed<RevealBody> }> {
    const votes = []
    for (const [from, reveal] of s.reveals) {
      const commit = s.commits.get(from) ?? s.late.get(from)
      if (commit === undefined || s.faulty.has(from) || !opens(commit.body, reveal.body)) continue
      votes.push({ commit, reveal })
    }
    return votes
  }

  private tally (s: RoundState): void {
    const votes = this.validVotes(s)
    if (s.certificate === undefined) {
      const groups = new Map<string, typeof votes>()
      for (const v of votes) {
        const k = toHex(v.reveal.body.result)
        const g = groups.get(k) ?? []
        g.push(v)
        groups.set(k, g)
      }
      for (const g of groups.values()) {
        if (g.length >= quorumOf(s.header.f, s.header.committee.length)) {
          this.certify(s, buildCertificate(s.header, g[0].reveal.body.result, g), s.input, true)
          break
        }
      }
    }
    const cert = s.certificate
    if (cert === undefined) return
    for (const v of votes) {
      const from = v.commit.body.from
      if (equalBytes(v.reveal.body.result, cert.result)) {
        if (!s.rewarded.has(from) && s.early.has(from)) {
          s.rewarded.add(from)
          this.ledger.reward(from)
          this.uptime.processed(from)
        }
      } else if (s.op.objective && !s.dissenters.has(from)) {
        s.dissenters.add(from)
        this.slash(s, 'dissent', from, [v.commit, v.reveal], cert)
      }
    }
  }

  /** Takes a verified certificate for its key; a second one with another result is evidence against those who signed both. */
  private certify (s: RoundState | undefined, cert: Certificate, input: Uint8Array | undefined, formedHere: boolean): void {
    const key = cert.header.key
    const held = this.certifiedKeys.get(key)
    if (held !== undefined && !equalBytes(held.certificate.result, cert.result)) {
      this.metrics.conflictRefused()
      this.log.error({ key }, 'refused a second certificate with another result for a certified key')
      const both = new Set(signersOf(held.certificate))
      for (const m of signersOf(cert)) if (both.has(m)) this.report(buildEvidence('conflict', m, cert.header, [], held.certificate, cert))
      return
    }
    if (s !== undefined) {
      if (s.certificate !== undefined) return
      s.certificate = cert
      s.cancels.push(this.timers.after(ROUND_KEEP_MS, () => { this.close(s); this.rounds.delete(s.idHex) }))
    }
    if (held === undefined) {
      remember(this.certifiedKeys, key, { certificate: cert, input }, CERTIFIED_KEYS_MAX)
      // The key is decided: this member's votes on it are no longer needed after a restart.
      this.votes.delete(key)
      if (s !== undefined) this.metrics.roundCertified(s.header.op, this.now() - s.openedAt)
      if (formedHere && s !== undefined && this.announces(s, cert)) this.publish(this.topics.certified, encodeAnnouncement(cert, input))
      this.ops.get(cert.header.op)?.certified?.(cert, input)
    }
    this.notify()
  }

  /**
   * Whether this member announces the certificate it formed, for nodes that missed some votes:
   * the round's proposer does; where the proposer's vote is missing (it may be down), the first
   * signer does. One announcement a round, not one per member whose vote sorted first: each is
   * an epoch-sized message on gossip.
   */
  private announces (s: RoundState, cert: Certificate): boolean {
    const proposer = s.proposal.body.from
    if (proposer === this.self) return true
    return cert.votes[0]?.commit.body.from === this.self && !cert.votes.some(v => v.commit.body.from === proposer)
  }

  private close (s: RoundState): void {
    s.closed = true
    s.abort.abort()
    for (const c of s.cancels) c()
    s.cancels = []
  }

  private slash (s: RoundState, reason: FaultReason, accused: string, messages: Signed[], cert?: Certificate): void {
    if (reason !== 'dissent') s.faulty.add(accused)
    this.report(buildEvidence(reason, accused, s.header, messages, cert))
    if (reason === 'mismatch' || reason === 'equivocate') this.tally(s)
  }

  /** Applies evidence this node observed itself and gossips it. */
  private report (evidence: Evidence): void {
    this.keepEvidence(evidence.id, evidence.bytes)
    if (this.ledger.apply(evidence)) {
      this.log.warn({ accused: evidence.accused, reason: evidence.reason, key: evidence.header.key, evidence: evidence.id }, 'member slashed')
      this.publish(this.topics.evidence, evidence.bytes)
    }
  }

  /**
   * Why evidence does not hold against this node's certified state, or undefined: the round's
   * committee, seed and f must be the ones the certified chain gives for its key, and a
   * bad-proposal must break the operation's rules. Evidence for a key this node cannot judge
   * (no certified state for it) is not applied.
   */
  checkEvidence (ev: Evidence): string | undefined {
    const h = ev.header
    const op = this.ops.get(h.op)
    const ctx = op?.context(h.key)
    if (op === undefined || ctx === undefined) return NO_STATE
    const committee = selectCommittee(ctx.candidates, ctx.seed, this.f, this.committeeSize)
    if (!equalBytes(ctx.seed, h.seed) || h.f !== this.f || committee.length !== h.committee.length || committee.some((m, i) => m !== h.committee[i])) return 'its round is not one of the certified committee'
    if (ev.reason === 'dissent' && !op.objective) return 'dissent on an operation that is not objective'
    if (ev.reason === 'bad-proposal') {
      const p = decodeMessageOf(ev.messages[0], 'proposal')
      if (op.proposers === 'leader' && p.body.from !== proposerOf(committee, h.attempt)) return 'the proposal is not the proposer\'s'
      if (op.violation?.(h.key, p.body.input) === undefined) return 'the proposal breaks no rule'
    }
    return undefined
  }

  /**
   * Evidence from the network, judged once per buffer: 'reject' when it proves nothing or
   * contradicts this node's certified chain (forged), 'ignore' when this node cannot judge it
   * (no certified state for its key) or already holds it, else the evidence.
   */
  private readonly judged = new WeakMap<Uint8Array, Evidence | 'reject' | 'ignore'>()

  private evidenceFrom (data: Uint8Array): Evidence | 'reject' | 'ignore' {
    const held = this.judged.get(data)
    if (held !== undefined) return held
    let verdict: Evidence | 'reject' | 'ignore'
    // Every observer of a fault publishes the same evidence (same bytes): checked once.
    if (data.length <= MAX_EVIDENCE_BYTES && this.evidenceStore.has(toHex(sha256(data)))) verdict = 'ignore'
    else {
      try {
        const ev = verifyEvidence(data)
        const wrong = this.checkEvidence(ev)
        if (wrong === undefined) verdict = ev
        else {
          this.log.debug({ accused: ev.accused, reason: ev.reason, why: wrong }, 'evidence rejected')
          verdict = wrong === NO_STATE ? 'ignore' : 'reject'
        }
      } catch (err) {
        if (!(err instanceof EvidenceInvalidError)) throw err
        this.log.debug({ err: err.message }, 'evidence rejected')
        verdict = 'reject'
      }
    }
    this.judged.set(data, verdict)
    return verdict
  }

  private judgeEvidence (data: Uint8Array): 'accept' | 'reject' | 'ignore' {
    const v = this.evidenceFrom(data)
    return typeof v === 'string' ? v : 'accept'
  }

  private receiveEvidence (data: Uint8Array): void {
    const ev = this.evidenceFrom(data)
    if (typeof ev === 'string') return
    this.keepEvidence(ev.id, ev.bytes)
    if (this.ledger.apply(ev)) this.log.warn({ accused: ev.accused, reason: ev.reason, key: ev.header.key, evidence: ev.id }, 'member slashed (evidence from a peer)')
  }

  /** True when this node holds a certificate with the key and result an announcement claims. */
  private holds (data: Uint8Array): boolean {
    const claim = claimOf(data)
    const held = claim === undefined ? undefined : this.certifiedKeys.get(claim.key)
    return held !== undefined && claim !== undefined && equalBytes(held.certificate.result, claim.result)
  }

  /** Gossip's judgement of an announcement: one this node holds already is neither taken nor relayed (announcement.ts). */
  private judgeCertified (data: Uint8Array): 'accept' | 'ignore' {
    // What does not decode is refused where it is delivered, with the reason logged.
    return this.holds(data) ? 'ignore' : 'accept'
  }

  private receiveCertified (data: Uint8Array): void {
    let cert: Certificate
    let input: Uint8Array
    try {
      // Most nodes formed the same certificate themselves: skip its signatures then.
      if (this.holds(data)) return
      const a = decodeAnnouncement(data)
      cert = verifyCertificate(a.certificate)
      input = a.input
      if (!equalBytes(inputDigestOf(input), cert.header.inputDigest)) throw new ConsensusMessageError('input does not match the certificate')
    } catch (err) {
      if (!(err instanceof ConsensusMessageError) && !(err instanceof CertificateInvalidError) && (err as Error).name !== 'NonCanonicalEncodingError') throw err
      this.log.debug({ err: (err as Error).message }, 'certified result rejected')
      return
    }
    const h = cert.header
    const op = this.ops.get(h.op)
    const ctx = op?.context(h.key)
    if (op === undefined || ctx === undefined || !equalBytes(ctx.seed, h.seed) || h.f !== this.f) return
    const expected = selectCommittee(ctx.candidates, ctx.seed, this.f, this.committeeSize)
    if (expected.length !== h.committee.length || expected.some((m, i) => m !== h.committee[i])) return
    this.certify(this.rounds.get(toHex(roundIdOf(h))), cert, input, false)
  }
}
