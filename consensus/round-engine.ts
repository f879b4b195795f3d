// The commit-reveal round engine. One instance per node; every node observes every round on
// the rounds topic, committee members also vote. A round:
//   1. proposal: the proposer (first member of the attempt's committee, or any candidate for
//      operations that allow it) publishes the input; each node checks the committee against
//      its own agreed state (seed, candidates, attempt) before taking the round as known.
//   2. commit: each member evaluates the operation on the input and publishes a signed
//      commitment H(result ‖ nonce ‖ peerId ‖ round).
//   3. reveal: opens when all commitments are in (of the members still reachable, given a
//      quorum) or at the commit deadline. A commitment
//      that arrives after another member's reveal and opens with that reveal's nonce is a
//      copy (slashed, never counted).
//   4. 2f+1 matching valid reveals (each opening its own commitment) form a certificate;
//      without them by the reveal deadline the round fails (RoundFailedError) and nothing
//      is applied.
// Locks: once a member has revealed on a key it votes on that key only for the same input in
// later attempts, and a later proposer re-proposes the input it is locked on (or first
// evaluated); with the committee kept across a window of attempts (committee.ts) two attempts
// cannot certify two inputs: their quorums share an honest, locked member. A lock is released
// when its round failed here and a full attempt time has passed since without any certificate
// for the key: a certificate, had one formed, would have reached this node by then (partial
// synchrony); without the release, members locked on different inputs after a split vote
// would block the key for ever.
// Faults are slashed as they are seen (equivocation, mismatch, copy, dissent). Withholding is
// judged only in certified rounds, a grace after the certificate (a few phases of the observed
// latency, see graceMs()), only against members this node is connected to and that are not
// among the certificate's signers; a reveal that turns up later and opens the member's
// commitment withdraws the slash (TrustLedger.absolve). A slow honest member is late, not a
// withholder; one that never reveals (or never commits) still is.
import { toHex, equalBytes, encodeCanonical, decodeCanonical } from '../crypto/index.ts'
import { RoundFailedError, ConsensusMessageError, CertificateInvalidError, EvidenceInvalidError, type RoundFailureReason } from './errors.ts'
import { selectCommittee, quorumOf, minimumCommittee, effectiveF, smallestCommittee } from './committee.ts'
import { roundIdOf, commitmentOf, inputDigestOf, type RoundHeader } from './round.ts'
import { signMessage, decodeMessage, MAX_MESSAGE_BYTES, type Signed, type MessageSigner, type ProposalBody, type CommitBody, type RevealBody } from './messages.ts'
import { buildCertificate, verifyCertificate, opens, signersOf, type Certificate } from './certificate.ts'
import { buildEvidence, verifyEvidence } from './evidence.ts'
import { TrustLedger } from './trust-ledger.ts'
import { DifferentialUptime } from './uptime.ts'
import { RoundDeadlines, type DeadlineOptions } from './deadlines.ts'
import { ConsensusMetrics } from './metrics.ts'
import { HonestConduct, type MemberConduct, type ConductActions, type Ballot } from './conduct.ts'
import { consensusTopics, type ConsensusPubSub } from './pubsub.ts'
import { quietLogger, type ConsensusLogger } from './logger.ts'
import type { FaultReason } from './fault-rules.ts'

/** The agreed state a round's committee is drawn from. */
export interface RoundContext {
  candidates: readonly string[]
  seed: Uint8Array
}

export interface Operation {
  readonly name: string
  /** Deterministic on the same input: a valid reveal of another result is a fault (dissent). */
  readonly objective: boolean
  /** Who may open a round: the attempt's first committee member, or any candidate (inputs derived from the key). */
  readonly proposers: 'leader' | 'candidates'
  /** Committee inputs for a key from agreed state; undefined while this node cannot know them. */
  context: (key: string) => RoundContext | undefined
  /** Why this node must not vote on this key now, or undefined. */
  refusal?: (key: string) => RoundFailureReason | undefined
  /** Validates the input and computes the result; throws for invalid input (this member then does not vote). */
  evaluate: (key: string, input: Uint8Array, signal: AbortSignal) => Promise<Uint8Array>
  /** A certificate for this operation was formed or received and verified. */
  certified?: (certificate: Certificate, input: Uint8Array | undefined) => void
}

export interface RoundEngineOptions {
  signer: MessageSigner
  pubsub: ConsensusPubSub
  /** `mycelium/<networkId>`; topics are `<prefix>/bft/...`. */
  topicPrefix: string
  /** Faults tolerated; quorum 2f+1, committees of max(3f+1, committeeSize). Default 1. */
  f?: number
  committeeSize?: number
  clock?: () => number
  log?: ConsensusLogger
  deadlines?: DeadlineOptions
  /** How long a node waits for an attempt's proposal before moving to the next attempt. */
  proposalWaitMs?: number
  /** Fixed time after the certificate before withholding is judged (default: follows the deadlines, see graceMs()). */
  graceMs?: number
  /** This node's behaviour as a member (default honest). */
  conduct?: () => MemberConduct
  ledger?: TrustLedger
  uptime?: DifferentialUptime
  metrics?: ConsensusMetrics
  /** True while this node has a live connection to the peer; withholding is judged only then. */
  isConnected?: (peerId: string) => boolean
}

interface RoundState {
  id: Uint8Array
  idHex: string
  header: RoundHeader
  op: Operation
  input: Uint8Array
  openedAt: number
  commits: Map<string, Signed<CommitBody>>
  lateCommits: Map<string, Signed<CommitBody>>
  reveals: Map<string, Signed<RevealBody>>
  faulty: Set<string>
  dissenters: Set<string>
  rewarded: Set<string>
  revealOpen: boolean
  certificate?: Certificate
  /** When this node first held the round's certificate (the withholding grace counts from there). */
  certifiedAt?: number
  /** Times the withholding judgement was put off because this node's own timers ran late. */
  postponed: number
  failure?: RoundFailedError
  failedAt?: number
  closed: boolean
  voted: boolean
  conduct?: MemberConduct
  timers: Array<ReturnType<typeof setTimeout>>
  abort: AbortController
}

const PENDING_ROUNDS_MAX = 128
const PENDING_TTL_MS = 30_000
const ROUND_KEEP_MS = 120_000
const CERTIFIED_KEYS_MAX = 4096
const EVIDENCE_KEPT = 1024
const KEYS_REMEMBERED = 256
/** Withholding is judged this many phases (of the observed latency) after the certificate. */
const GRACE_PHASES = 3
const GRACE_MIN_MS = 500
/** How often one round's withholding judgement may be put off for this node's own stalls. */
const JUDGE_POSTPONED_MAX = 4

function remember (map: Map<string, Uint8Array>, key: string, value: Uint8Array): void {
  if (map.has(key)) return
  if (map.size >= KEYS_REMEMBERED) map.delete(map.keys().next().value as string)
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
  private readonly o: RoundEngineOptions
  private readonly topics: ReturnType<typeof consensusTopics>
  private readonly clock: () => number
  private readonly log: ConsensusLogger
  private readonly ops = new Map<string, Operation>()
  private readonly rounds = new Map<string, RoundState>()
  private readonly pending = new Map<string, { at: number, messages: Signed[] }>()
  private readonly certifiedKeys = new Map<string, Certificate>()
  private readonly changeListeners = new Set<() => void>()
  private readonly unsubscribes: Array<() => void> = []
  private readonly evidenceStore = new Map<string, Uint8Array>()
  private readonly locks = new Map<string, { inputDigest: Uint8Array, input: Uint8Array, round: string }>()
  private readonly evaluatedInputs = new Map<string, Uint8Array>()
  private readonly proposals = new Map<string, Signed<ProposalBody>>()
  /** Proposals that came before this node held their agreed state, by round id (see refresh()). */
  private readonly early = new Map<string, { at: number, proposal: Signed<ProposalBody> }>()
  private running = false

  constructor (options: RoundEngineOptions) {
    this.o = options
    this.self = options.signer.peerId
    this.f = options.f ?? 1
    this.committeeSize = Math.max(minimumCommittee(this.f), options.committeeSize ?? minimumCommittee(this.f))
    this.clock = options.clock ?? Date.now
    this.log = options.log ?? quietLogger
    this.ledger = options.ledger ?? new TrustLedger({ clock: this.clock })
    this.uptime = options.uptime ?? new DifferentialUptime({ clock: this.clock })
    this.metrics = options.metrics ?? new ConsensusMetrics()
    this.deadlines = new RoundDeadlines(options.deadlines)
    this.topics = consensusTopics(options.topicPrefix)
    this.ledger.onSlash((_peer, slash) => this.metrics.slashed(slash.reason))
  }

  register (op: Operation): void {
    this.ops.set(op.name, op)
  }

  start (): void {
    if (this.running) return
    this.running = true
    this.unsubscribes.push(this.o.pubsub.subscribe(this.topics.rounds, (data) => this.receive(data)))
    this.unsubscribes.push(this.o.pubsub.subscribe(this.topics.evidence, (data) => this.receiveEvidence(data)))
    this.unsubscribes.push(this.o.pubsub.subscribe(this.topics.certified, (data) => this.receiveCertified(data)))
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

  /** The committee of an attempt, in ranking order (first = proposer). */
  committeeFor (op: string, key: string, attempt: number): string[] | undefined {
    const ctx = this.ops.get(op)?.context(key)
    return ctx === undefined ? undefined : selectCommittee(ctx.candidates, ctx.seed, attempt, this.committeeSize)
  }

  certificateOf (key: string): Certificate | undefined {
    return this.certifiedKeys.get(key)
  }

  /** Opens attempt `attempt` of a round on `key` as its proposer. */
  async propose (opName: string, key: string, input: Uint8Array, attempt: number): Promise<RoundHeader> {
    const op = this.ops.get(opName)
    if (op === undefined) throw new TypeError(`unknown operation ${opName}`)
    const ctx = op.context(key)
    if (ctx === undefined) throw new RoundFailedError('invalid-input', attempt, `no agreed state for ${key}`)
    const committee = selectCommittee(ctx.candidates, ctx.seed, attempt, this.committeeSize)
    if (committee.length < smallestCommittee(this.f)) throw new RoundFailedError('not-enough-candidates', attempt)
    const header: RoundHeader = { op: opName, key, seed: ctx.seed, inputDigest: inputDigestOf(input), committee, attempt, f: effectiveF(this.f, committee.length) }
    const proposal = signMessage(this.o.signer, { t: 'proposal', from: this.self, header, input })
    this.publish(this.topics.rounds, proposal.bytes)
    this.onProposal(proposal as Signed<ProposalBody>)
    return header
  }

  /**
   * Runs attempts on `key` until one is certified: attempt a's proposer (if this node) proposes
   * `input(a)`; a node moves on when the attempt fails or no proposal came in time.
   */
  async run (opName: string, key: string, input: (attempt: number) => Promise<Uint8Array>, options: { signal?: AbortSignal, maxAttempts?: number, firstAttempt?: number } = {}): Promise<Certificate> {
    const op = this.ops.get(opName)
    if (op === undefined) throw new TypeError(`unknown operation ${opName}`)
    const maxAttempts = options.maxAttempts ?? 4
    const first = options.firstAttempt ?? 0
    let last: RoundFailureReason = 'no-proposal'
    for (let attempt = first; attempt < first + maxAttempts; attempt++) {
      if (options.signal?.aborted === true) throw new RoundFailedError('aborted', attempt)
      const done = this.certifiedKeys.get(key)
      if (done !== undefined) return done
      const refusal = op.refusal?.(key)
      if (refusal === 'read-only' || refusal === 'already-certified') throw new RoundFailedError(refusal, attempt)
      const ctx = op.context(key)
      if (ctx === undefined) throw new RoundFailedError('invalid-input', attempt, `no agreed state for ${key}`)
      const committee = selectCommittee(ctx.candidates, ctx.seed, attempt, this.committeeSize)
      if (committee.length < smallestCommittee(this.f)) throw new RoundFailedError('not-enough-candidates', attempt)
      const proposer = op.proposers === 'leader' ? committee[0] === this.self : ctx.candidates.includes(this.self)
      if (proposer && refusal === undefined) await this.propose(opName, key, this.locks.get(key)?.input ?? this.evaluatedInputs.get(key) ?? await input(attempt), attempt)
      const outcome = await this.waitAttempt(op, key, attempt, options.signal)
      if (outcome === 'certified') return this.certifiedKeys.get(key) as Certificate
      if (outcome === 'settled') throw new RoundFailedError('already-certified', attempt, `${key} was settled elsewhere`)
      last = outcome === 'failed' ? 'no-quorum' : 'no-proposal'
      if (outcome === 'aborted') throw new RoundFailedError('aborted', attempt)
    }
    this.metrics.roundFailed(opName, last)
    throw new RoundFailedError(last, first + maxAttempts - 1, `no certificate for ${key} after ${maxAttempts} attempts (${last})`)
  }

  /** The bytes of a slash's evidence (own or gossiped), by evidence id, for recent slashes. */
  evidence (id: string): Uint8Array | undefined {
    return this.evidenceStore.get(id)
  }

  private keepEvidence (id: string, bytes: Uint8Array): void {
    if (this.evidenceStore.size >= EVIDENCE_KEPT) this.evidenceStore.delete(this.evidenceStore.keys().next().value as string)
    this.evidenceStore.set(id, bytes)
  }

  /**
   * Rounds currently known (not closed yet), for status output. `failed`: the reveal deadline
   * passed here without a certificate (the round stays listed until it is closed).
   */
  activeRounds (): Array<{ op: string, key: string, attempt: number, committee: string[], commits: number, reveals: number, certified: boolean, failed: boolean }> {
    return [...this.rounds.values()].filter(s => !s.closed).map(s => ({ op: s.header.op, key: s.header.key, attempt: s.header.attempt, committee: s.header.committee, commits: s.commits.size, reveals: s.reveals.size, certified: s.certificate !== undefined, failed: s.failure !== undefined }))
  }

  /** How long one attempt may take: the wait for its proposal and its two phases. */
  private attemptMs (): number {
    const phase = this.deadlines.phaseMs()
    return Math.max(this.o.proposalWaitMs ?? 1000, phase) + 2 * phase
  }

  /**
   * Something the operations' state depends on changed (e.g. an epoch was adopted from a peer).
   * Proposals that came before that state are taken up now, and rounds this node could not vote
   * in yet are offered the vote again: a member that is merely behind still votes instead of
   * looking like one that withholds.
   */
  refresh (): void {
    const now = this.clock()
    for (const [id, held] of this.early) {
      if (now - held.at > PENDING_TTL_MS) this.early.delete(id)
      else if (this.ops.get(held.proposal.body.header.op)?.context(held.proposal.body.header.key) !== undefined) {
        this.early.delete(id)
        this.onProposal(held.proposal)
      }
    }
    this.offerVotes()
    this.notify()
  }

  /** Votes in the open rounds this node is a member of and has not voted in (vote() checks the refusals again). */
  private offerVotes (): void {
    for (const s of [...this.rounds.values()]) {
      if (!s.voted && !s.closed && s.failure === undefined && s.certificate === undefined && s.header.committee.includes(this.self)) void this.vote(s)
    }
  }

  private waitAttempt (op: Operation, key: string, attempt: number, signal?: AbortSignal): Promise<'certified' | 'settled' | 'failed' | 'timeout' | 'aborted'> {
    const budget = this.attemptMs()
    const start = this.clock()
    return new Promise(resolve => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const check = (): void => {
        if (this.certifiedKeys.has(key)) return finish('certified')
        if (op.refusal?.(key) === 'already-certified') return finish('settled')
        if (signal?.aborted === true || !this.running) return finish('aborted')
        const mine = [...this.rounds.values()].filter(s => s.header.key === key && s.header.attempt === attempt)
        if (mine.length > 0 && mine.every(s => s.failure !== undefined)) return finish('failed')
        if (mine.length === 0 && this.clock() - start >= budget) return finish('timeout')
      }
      const finish = (outcome: 'certified' | 'settled' | 'failed' | 'timeout' | 'aborted'): void => {
        this.changeListeners.delete(check)
        signal?.removeEventListener('abort', check)
        if (timer !== undefined) clearTimeout(timer)
        resolve(outcome)
      }
      this.changeListeners.add(check)
      signal?.addEventListener('abort', check)
      timer = setTimeout(check, budget + 5)
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
    const now = this.clock()
    for (const [k, v] of this.pending) if (now - v.at > PENDING_TTL_MS) this.pending.delete(k)
    let p = this.pending.get(id)
    if (p === undefined) {
      if (this.pending.size >= PENDING_ROUNDS_MAX) return
      p = { at: now, messages: [] }
      this.pending.set(id, p)
    }
    if (p.messages.length < 4 * 64) p.messages.push(m)
  }

  private onProposal (p: Signed<ProposalBody>): void {
    const h = p.body.header
    const op = this.ops.get(h.op)
    if (op === undefined) return
    const ctx = op.context(h.key)
    if (ctx === undefined) {
      // This node does not hold the agreed state yet (e.g. it is still adopting the previous
      // epoch): the proposal is kept until refresh() says the state changed, instead of being
      // dropped, which would leave this member out of the round (and judged a withholder).
      const id = toHex(roundIdOf(h))
      if (!this.early.has(id)) {
        if (this.early.size >= PENDING_ROUNDS_MAX) this.early.delete(this.early.keys().next().value as string)
        this.early.set(id, { at: this.clock(), proposal: p })
      }
      return this.log.debug({ key: h.key }, 'proposal for a key without agreed state (kept)')
    }
    const expected = selectCommittee(ctx.candidates, ctx.seed, h.attempt, this.committeeSize)
    if (!equalBytes(ctx.seed, h.seed) || h.f !== effectiveF(this.f, expected.length) || expected.length < smallestCommittee(this.f)) return this.log.debug({ key: h.key }, 'proposal with another seed or f')
    if (expected.length !== h.committee.length || expected.some((m, i) => m !== h.committee[i])) return this.log.debug({ key: h.key }, 'proposal with a wrong committee')
    const mayPropose = op.proposers === 'leader' ? p.body.from === h.committee[0] : ctx.candidates.includes(p.body.from)
    if (!mayPropose) return this.log.debug({ key: h.key, from: p.body.from }, 'proposal from a peer that may not propose')
    if (!equalBytes(inputDigestOf(p.body.input), h.inputDigest)) return
    // A proposer that opens one attempt with two different inputs splits the committee: equivocation.
    const slot = `${h.op}|${h.key}|${h.attempt}|${p.body.from}`
    const earlier = this.proposals.get(slot)
    if (earlier !== undefined && !equalBytes(earlier.body.header.inputDigest, h.inputDigest)) {
      this.report(buildEvidence('equivocate', p.body.from, earlier.body.header, [earlier, p]))
      return
    }
    if (earlier === undefined) {
      if (this.proposals.size >= PENDING_ROUNDS_MAX * 8) this.proposals.delete(this.proposals.keys().next().value as string)
      this.proposals.set(slot, p)
    }
    const id = roundIdOf(h)
    const idHex = toHex(id)
    if (this.rounds.has(idHex)) return
    this.uptime.seen(p.body.from)
    const s: RoundState = {
      id, idHex, header: h, op, input: p.body.input, openedAt: this.clock(),
      commits: new Map(), lateCommits: new Map(), reveals: new Map(), faulty: new Set(), dissenters: new Set(), rewarded: new Set(),
      revealOpen: false, postponed: 0, closed: false, voted: false, timers: [], abort: new AbortController()
    }
    this.rounds.set(idHex, s)
    s.timers.push(setTimeout(() => this.openReveal(s), this.deadlines.phaseMs()))
    this.notify()
    if (h.committee.includes(this.self)) void this.vote(s)
    const held = this.pending.get(idHex)
    this.pending.delete(idHex)
    for (const m of held?.messages ?? []) {
      if (m.body.t === 'commit') this.onCommit(s, m as Signed<CommitBody>)
      else this.onReveal(s, m as Signed<RevealBody>)
    }
  }

  private refusalOf (s: RoundState): RoundFailureReason | undefined {
    const reason = s.op.refusal?.(s.header.key)
    if (reason !== undefined) return reason
    if (this.certifiedKeys.has(s.header.key)) return 'already-certified'
    const lock = this.locks.get(s.header.key)
    if (lock !== undefined && !equalBytes(lock.inputDigest, s.header.inputDigest)) {
      const held = this.rounds.get(lock.round)
      const failedAt = held === undefined ? 0 : held.failedAt
      if (failedAt === undefined || this.clock() - failedAt < this.attemptMs()) return 'locked'
      this.locks.delete(s.header.key)
    }
    // One open vote per key: a member never backs two live rounds (attempts) on the same key.
    for (const other of this.rounds.values()) {
      if (other !== s && other.voted && other.header.key === s.header.key && other.failure === undefined) return 'already-certified'
    }
    return undefined
  }

  private async vote (s: RoundState): Promise<void> {
    const refusal = this.refusalOf(s)
    if (refusal !== undefined) {
      this.log.debug({ key: s.header.key, attempt: s.header.attempt, refusal }, 'not voting in round')
      return
    }
    s.voted = true
    let result: Uint8Array
    try {
      result = await s.op.evaluate(s.header.key, s.input, s.abort.signal)
    } catch (err) {
      this.log.warn({ key: s.header.key, err: (err as Error).message }, 'round input rejected; not voting')
      return
    }
    if (s.closed) return
    remember(this.evaluatedInputs, s.header.key, s.input)
    s.conduct = (this.o.conduct ?? (() => new HonestConduct()))()
    s.conduct.evaluated(result, this.actions(s))
    if (s.revealOpen) s.conduct.revealPhase(this.actions(s))
  }

  private actions (s: RoundState): ConductActions {
    return {
      commit: (b: Ballot) => {
        if (s.closed) return
        const c = signMessage(this.o.signer, { t: 'commit', from: this.self, round: s.id, commitment: commitmentOf(b.result, b.nonce, this.self, s.id) })
        this.publish(this.topics.rounds, c.bytes)
        this.onCommit(s, c)
      },
      reveal: (b: Ballot) => {
        if (s.closed) return
        if (!this.locks.has(s.header.key)) {
          if (this.locks.size >= KEYS_REMEMBERED) this.locks.delete(this.locks.keys().next().value as string)
          this.locks.set(s.header.key, { inputDigest: s.header.inputDigest, input: s.input, round: s.idHex })
        }
        const r = signMessage(this.o.signer, { t: 'reveal', from: this.self, round: s.id, result: b.result, nonce: b.nonce })
        this.publish(this.topics.rounds, r.bytes)
        this.onReveal(s, r)
      }
    }
  }

  private onCommit (s: RoundState, c: Signed<CommitBody>): void {
    const from = c.body.from
    // A certified round is still heard after it is closed: a late member's vote clears it (absolve()).
    if (!s.header.committee.includes(from) || (s.closed && s.certificate === undefined)) return
    this.uptime.seen(from)
    const earlier = s.commits.get(from) ?? s.lateCommits.get(from)
    if (earlier !== undefined) {
      if (!equalBytes(earlier.body.commitment, c.body.commitment)) this.slash(s, 'equivocate', from, [earlier, c])
      return
    }
    if (s.revealOpen) s.lateCommits.set(from, c)
    else s.commits.set(from, c)
    for (const r of s.reveals.values()) this.checkCopy(s, c, r)
    // Late arrivals are measured too, so deadlines grow when the network is slower than they are;
    // not a copy's, which comes late by design and would stretch every deadline (and grace) after it.
    if (from !== this.self && !s.faulty.has(from)) this.deadlines.observe(this.clock() - s.openedAt)
    if (!s.revealOpen && this.allCommitsIn(s)) this.openReveal(s)
    this.absolve(s, from)
  }

  /**
   * Every member that can still send has committed: all of them, or, when some members are
   * unreachable from here (crashed, cut off), every reachable one and at least a quorum.
   */
  private allCommitsIn (s: RoundState): boolean {
    if (s.commits.size === s.header.committee.length) return true
    if (this.o.isConnected === undefined || s.commits.size < quorumOf(s.header.f, s.header.committee.length)) return false
    return s.header.committee.every(m => s.commits.has(m) || (m !== this.self && !this.o.isConnected?.(m)))
  }

  private onReveal (s: RoundState, r: Signed<RevealBody>): void {
    const from = r.body.from
    if (!s.header.committee.includes(from) || (s.closed && s.certificate === undefined)) return
    this.uptime.seen(from)
    const earlier = s.reveals.get(from)
    if (earlier !== undefined) {
      if (!equalBytes(earlier.body.result, r.body.result) || !equalBytes(earlier.body.nonce, r.body.nonce)) this.slash(s, 'equivocate', from, [earlier, r])
      return
    }
    s.reveals.set(from, r)
    const commit = s.commits.get(from) ?? s.lateCommits.get(from)
    if (commit !== undefined && !opens(commit.body, r.body)) this.slash(s, 'mismatch', from, [commit, r])
    if (from !== this.self && commit !== undefined && opens(commit.body, r.body)) s.conduct?.peerRevealed?.({ result: r.body.result, nonce: r.body.nonce }, this.actions(s))
    this.tally(s)
    this.absolve(s, from)
  }

  /** True if the member's reveal opens its own commitment in this round (it did not withhold). */
  private revealed (s: RoundState, member: string): boolean {
    const reveal = s.reveals.get(member)
    const commit = s.commits.get(member) ?? s.lateCommits.get(member)
    return reveal !== undefined && commit !== undefined && !s.faulty.has(member) && opens(commit.body, reveal.body)
  }

  /**
   * A member's vote reached this node after the round was certified (possibly after it was
   * judged a withholder here or by f+1 attesters): it was slow, not withholding, and a
   * withholding slash for this round is withdrawn.
   */
  private absolve (s: RoundState, member: string): void {
    if (s.certificate === undefined || !this.revealed(s, member)) return
    if (this.ledger.absolve(member, s.idHex)) this.log.info({ key: s.header.key, member }, 'withholding slash withdrawn: the member revealed late')
  }

  /**
   * A commitment that arrives after another member's reveal and opens with that reveal's
   * result and nonce was made from it: a copy. (Checked only in that order: the member whose
   * nonce was copied committed before anyone could know it.)
   */
  private checkCopy (s: RoundState, c: Signed<CommitBody>, r: Signed<RevealBody>): void {
    const copier = c.body.from
    if (copier === r.body.from || s.faulty.has(copier)) return
    if (!equalBytes(commitmentOf(r.body.result, r.body.nonce, copier, s.id), c.body.commitment)) return
    const attest = signMessage(this.o.signer, { t: 'attest', from: this.self, round: s.id, accused: copier, fault: 'copy' })
    this.slash(s, 'copy', copier, [c, r, attest])
  }

  private validVotes (s: RoundState): Array<{ commit: Signed<CommitBody>, reveal: Signed<RevealBody> }> {
    const votes = []
    for (const [from, reveal] of s.reveals) {
      const commit = s.commits.get(from) ?? s.lateCommits.get(from)
      if (commit === undefined || s.faulty.has(from) || !opens(commit.body, reveal.body)) continue
      votes.push({ commit, reveal })
    }
    return votes
  }

  private tally (s: RoundState): void {
    const votes = this.validVotes(s)
    if (s.certificate === undefined && s.failure === undefined) {
      const groups = new Map<string, typeof votes>()
      for (const v of votes) {
        const k = toHex(v.reveal.body.result)
        const g = groups.get(k) ?? []
        g.push(v)
        groups.set(k, g)
      }
      for (const g of groups.values()) {
        if (g.length >= quorumOf(s.header.f, s.header.committee.length)) {
          this.certify(s, buildCertificate(s.header, g[0].reveal.body.result, g), true)
          break
        }
      }
    }
    const cert = s.certificate
    if (cert === undefined) return
    for (const v of votes) {
      const from = v.commit.body.from
      if (equalBytes(v.reveal.body.result, cert.result)) {
        if (!s.rewarded.has(from)) {
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

  private certify (s: RoundState, cert: Certificate, formedHere: boolean): void {
    const key = s.header.key
    const held = this.certifiedKeys.get(key)
    if (held !== undefined && !equalBytes(held.result, cert.result)) {
      this.metrics.conflictRefused()
      this.log.error({ key }, 'refused a second certificate with another result for a certified key')
      return
    }
    s.certificate = cert
    s.certifiedAt = this.clock()
    if (held === undefined) {
      if (this.certifiedKeys.size >= CERTIFIED_KEYS_MAX) this.certifiedKeys.delete(this.certifiedKeys.keys().next().value as string)
      this.certifiedKeys.set(key, cert)
      this.metrics.roundCertified(s.header.op, this.clock() - s.openedAt)
      // The first signer announces it, for nodes that missed some votes.
      if (formedHere && cert.votes[0]?.commit.body.from === this.self) this.publish(this.topics.certified, encodeCanonical({ certificate: cert.bytes, input: s.input }))
      s.op.certified?.(cert, s.input)
    }
    this.notify()
  }

  private openReveal (s: RoundState): void {
    if (s.revealOpen || s.closed) return
    s.revealOpen = true
    s.conduct?.revealPhase(this.actions(s))
    const phase = this.deadlines.phaseMs()
    s.timers.push(setTimeout(() => this.revealDeadline(s), phase))
    this.judgeAt(s, this.clock() + phase + this.graceMs())
  }

  /**
   * How long members have, after the certificate, to reveal before withholding is judged: a few
   * phases of the latency this node observes (deadlines.ts), so it grows with a slow network or
   * a busy host instead of being a fixed few hundred ms.
   */
  private graceMs (): number {
    return this.o.graceMs ?? Math.max(GRACE_MIN_MS, GRACE_PHASES * this.deadlines.phaseMs())
  }

  private judgeAt (s: RoundState, at: number): void {
    s.timers.push(setTimeout(() => this.judge(s, at), Math.max(0, at - this.clock())))
  }

  private revealDeadline (s: RoundState): void {
    if (s.certificate !== undefined || s.closed) return
    s.failedAt = this.clock()
    s.failure = new RoundFailedError('no-quorum', s.header.attempt, `round ${s.header.key} attempt ${s.header.attempt} got no 2f+1 matching reveals`)
    this.metrics.roundFailed(s.header.op, 'no-quorum')
    this.log.info({ key: s.header.key, attempt: s.header.attempt, commits: s.commits.size, reveals: s.reveals.size }, 'round failed')
    // This node's open vote on the key has ended: a later attempt it refused for it may get its vote now.
    this.offerVotes()
    this.notify()
  }

  /**
   * Closes the round; for a certified one, first judges withholding: a grace after the
   * certificate, only connected members that neither revealed here nor signed the certificate
   * (its votes carry their reveals, e.g. when it came on the certified topic first).
   */
  private judge (s: RoundState, dueAt: number): void {
    if (s.closed) return
    const now = this.clock()
    const grace = this.graceMs()
    // The timer fired well after its time: this node's event loop was held up (a busy host) and
    // messages that arrived meanwhile are not read yet. That time is not counted against the members.
    if (now - dueAt > grace / 4 && s.postponed < JUDGE_POSTPONED_MAX) {
      s.postponed++
      return this.judgeAt(s, now + (now - dueAt))
    }
    const cert = s.certificate
    if (cert !== undefined && (s.certifiedAt ?? now) + grace > now) return this.judgeAt(s, (s.certifiedAt ?? now) + grace)
    if (cert !== undefined) {
      const signers = new Set(signersOf(cert))
      for (const member of s.header.committee) {
        if (member === this.self || s.faulty.has(member) || s.reveals.has(member) || signers.has(member)) continue
        if (this.o.isConnected !== undefined && !this.o.isConnected(member)) continue
        const fault = s.commits.has(member) || s.lateCommits.has(member) ? 'no-reveal' : 'no-commit'
        const attest = signMessage(this.o.signer, { t: 'attest', from: this.self, round: s.id, accused: member, fault })
        this.slash(s, 'withhold', member, [attest], cert)
      }
    }
    this.close(s)
    const t = setTimeout(() => this.rounds.delete(s.idHex), ROUND_KEEP_MS)
    t.unref?.()
  }

  private close (s: RoundState): void {
    s.closed = true
    s.abort.abort()
    for (const t of s.timers) clearTimeout(t)
    s.timers = []
  }

  private slash (s: RoundState, reason: FaultReason, accused: string, messages: Signed[], cert?: Certificate): void {
    if (reason !== 'withhold' && reason !== 'dissent') s.faulty.add(accused)
    this.report(buildEvidence(reason, accused, s.header, messages, cert))
    if (reason === 'copy' || reason === 'mismatch' || reason === 'equivocate') this.tally(s)
  }

  /** Applies evidence this node observed itself and gossips it. */
  private report (evidence: ReturnType<typeof buildEvidence>): void {
    this.keepEvidence(evidence.id, evidence.bytes)
    if (this.ledger.apply(evidence, { own: true })) {
      this.log.warn({ accused: evidence.accused, reason: evidence.reason, key: evidence.header.key, evidence: evidence.id }, 'member slashed')
      this.publish(this.topics.evidence, evidence.bytes)
    }
  }

  private receiveEvidence (data: Uint8Array): void {
    try {
      const ev = verifyEvidence(data)
      this.keepEvidence(ev.id, ev.bytes)
      // Withholding this node knows to be wrong: the accused's vote reached it (late, or after the attester judged).
      if (ev.reason === 'withhold') {
        const s = this.rounds.get(toHex(roundIdOf(ev.header)))
        if (s !== undefined && this.revealed(s, ev.accused)) return
      }
      this.ledger.apply(ev, { own: false, attester: ev.attester })
    } catch (err) {
      if (!(err instanceof EvidenceInvalidError)) throw err
      this.log.debug({ err: err.message }, 'evidence rejected')
    }
  }

  private receiveCertified (data: Uint8Array): void {
    if (data.length > MAX_MESSAGE_BYTES + 80 * 1024) return
    let cert: Certificate
    let input: Uint8Array | undefined
    try {
      const raw = decodeCanonical(data) as { certificate?: unknown, input?: unknown }
      if (!(raw?.certificate instanceof Uint8Array) || !(raw.input instanceof Uint8Array)) throw new ConsensusMessageError('expected { certificate, input }')
      // Most nodes formed the same certificate themselves: skip its signatures then.
      const peek = decodeCanonical(raw.certificate) as { header?: { key?: unknown }, result?: unknown }
      const held = typeof peek?.header?.key === 'string' ? this.certifiedKeys.get(peek.header.key) : undefined
      if (held !== undefined && peek.result instanceof Uint8Array && equalBytes(held.result, peek.result)) return
      cert = verifyCertificate(raw.certificate)
      input = raw.input
      if (!equalBytes(inputDigestOf(input), cert.header.inputDigest)) throw new ConsensusMessageError('input does not match the certificate')
    } catch (err) {
      if (!(err instanceof ConsensusMessageError) && !(err instanceof CertificateInvalidError) && (err as Error).name !== 'NonCanonicalEncodingError') throw err
      this.log.debug({ err: (err as Error).message }, 'certified result rejected')
      return
    }
    const h = cert.header
    const op = this.ops.get(h.op)
    const ctx = op?.context(h.key)
    if (op === undefined || ctx === undefined || !equalBytes(ctx.seed, h.seed)) return
    const expected = selectCommittee(ctx.candidates, ctx.seed, h.attempt, this.committeeSize)
    if (h.f !== effectiveF(this.f, expected.length)) return
    if (expected.length !== h.committee.length || expected.some((m, i) => m !== h.committee[i])) return
    const idHex = toHex(roundIdOf(h))
    const s = this.rounds.get(idHex)
    if (s?.certificate !== undefined || (this.certifiedKeys.has(h.key) && equalBytes((this.certifiedKeys.get(h.key) as Certificate).result, cert.result))) return
    if (s !== undefined) return this.certify(s, cert, false)
    const held = this.certifiedKeys.get(h.key)
    if (held !== undefined) {
      this.metrics.conflictRefused()
      this.log.error({ key: h.key }, 'refused a second certificate with another result for a certified key')
      return
    }
    this.certifiedKeys.set(h.key, cert)
    op.certified?.(cert, input)
    this.notify()
  }
}
