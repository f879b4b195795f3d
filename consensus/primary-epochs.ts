// Primary epochs as an operation on the round engine. Every epoch interval the committee
// (drawn from the candidates recorded in the latest epoch, seeded by its digest) agrees on
// the digest of the next primary snapshot: the proposer's validated latent entries and the
// previous epoch, built by the spores side (EpochInputSource), deterministic for every member.
// The certified epoch goes to the sink (the primary tier).
//
// Split-brain: a node votes and proposes only while it is writable: it reaches 2f+1 of the
// last committee, and the peers it reaches have more differential uptime than those it cannot
// reach. Otherwise it is read-only for primary epochs (reads go on). It never votes on an epoch
// number it holds certified, and never adopts an epoch that conflicts with one it holds; after
// a heal it adopts the other side's certified epochs, checking every certificate.
import { encodeCanonical, decodeCanonical, equalBytes, toHex, sha256 } from '../crypto/index.ts'
import { RoundFailedError, ConflictingEpochError, EpochGapError, CertificateInvalidError, type RoundFailureReason } from './errors.ts'
import { selectCommittee, quorumOf, shortfall } from './committee.ts'
import { signersOf, type Certificate } from './certificate.ts'
import { checkEpochCertificate, EPOCH_OPERATION, epochKey } from './epoch-certificate.ts'
import { EpochChain, type EpochRecord } from './epoch-chain.ts'
import { consensusTopics, type ConsensusPubSub } from './pubsub.ts'
import { quietLogger, type ConsensusLogger } from './logger.ts'
import { encodeEpochProposal, decodeEpochProposal, type EpochBody } from './epoch-delta.ts'
import { answerCatchUp, decodeCatchUpRequest, decodeCatchUpResponse, encodeCatchUpRequest, CatchUpProtocolError, MAX_CATCH_UP_EPOCHS, MAX_CATCH_UP_REQUEST_BYTES, decodeMap, type CatchUpItem } from './catch-up.ts'
import { answerHeaderPage, decodeHeaderPage, encodeHeaderPageRequest, headerPageRequestOf, isHeaderPageRequest, MAX_HEADER_PAGE, type RetainedHeaders, type HeaderPair } from './header-sync.ts'
import type { RoundEngine, Operation } from './round-engine.ts'

export type { EpochBody } from './epoch-delta.ts'

export interface BuiltEpoch {
  digest: Uint8Array
  headerBytes: Uint8Array
  /** The entries as they go into the epoch (sorted canonical bytes). */
  entries: Uint8Array[]
}

export interface EpochHeaderFacts {
  epoch: number
  prev: Uint8Array | null
  candidates: string[]
  issuedAt: number
  digest: Uint8Array
}

/** The certified epoch a proposal builds on, as the content rules read it. */
export interface PreviousEpochFacts {
  epoch: number
  digest: Uint8Array
  issuedAt: number
  candidates: string[]
  entries: Uint8Array[]
}

/** Implemented by the spores side: the content of an epoch, its rules, its header and digest. */
export interface EpochInputSource {
  /**
   * What this node proposes after `previous`: entries (canonical bytes) and candidates that
   * break no rule, with at most `changeBytes` of entries that are new or changed (the rest waits
   * for the next epochs: a proposal carries only the change, see epoch-delta.ts).
   */
  propose: (previous: PreviousEpochFacts, issuedAt: number, signal: AbortSignal, changeBytes?: number) => Promise<{ entries: Uint8Array[], candidates: string[] }>
  /** Deterministic: what in `body` breaks the content rules against `previous`, or undefined. */
  violation: (body: EpochBody, previous: PreviousEpochFacts) => string | undefined
  /** Deterministic: the next epoch's header and digest; throws for invalid entries. */
  build: (body: EpochBody) => BuiltEpoch
  /** Reads a header this node did not build; throws if it is not a valid header. */
  readHeader: (headerBytes: Uint8Array) => EpochHeaderFacts
}

export interface CertifiedEpoch {
  epoch: number
  digest: Uint8Array
  headerBytes: Uint8Array
  entries?: Uint8Array[]
  certificate: Uint8Array
  committee: string[]
  signers: string[]
}

/** Where certified epochs go (the primary tier stores them). */
export interface EpochSink {
  /**
   * `between`: certified [header, certificate] pairs of the epochs before this one that came
   * without their entries (a member far behind checks the chain by headers, then takes whole
   * only an epoch whose entries its peers still hold).
   */
  accept: (epoch: CertifiedEpoch, between?: Array<[Uint8Array, Uint8Array]>) => void | Promise<void>
}

export interface PrimaryEpochsOptions {
  engine: RoundEngine
  pubsub: ConsensusPubSub
  topicPrefix: string
  source: EpochInputSource
  sink: EpochSink
  /** The latest certified epoch this node holds (from the primary tier); the chain starts there. */
  anchor: { headerBytes: Uint8Array, certificate: Uint8Array, entries?: Uint8Array[] }
  isConnected: (peerId: string) => boolean
  /** Default 30 s. */
  intervalMs?: number
  /** How often the schedule is checked (default min(1 s, interval / 4)). */
  tickMs?: number
  maxAttempts?: number
  /** The first attempt's length on every member (default 1.5 s; agreed, not measured: members count attempts alike). */
  slotMs?: number
  /** A Byzantine proposer's tampering with its own proposals (fault drills and tests only). */
  proposalConduct?: (body: EpochBody, previous: PreviousEpochFacts) => EpochBody
  /** How far a proposal's issuedAt may be from this member's clock (default 15 s). */
  maxClockSkewMs?: number
  log?: ConsensusLogger
  /**
   * Catch-up by request/response with one peer at a time (catch-up.ts). Without it (the
   * simulator, which has no streams) a node behind asks on the epochs topic and is answered there.
   */
  catchUp?: CatchUpTransport
  /**
   * Certified headers kept long after their entries (the primary tier's archive): served to
   * members far behind, and filled by this node's own light sync. Without it (the simulator)
   * only the epochs held in memory are served.
   */
  headers?: RetainedHeaders
  /** How many of the newest certified epochs are held in memory and served as epochs (default 64). */
  recentEpochs?: number
}

/** A request/response path to single peers, bounded in time and size by its implementation. */
export interface CatchUpTransport {
  /** Peers to ask, in the order they are tried (verified members only). */
  peers: () => string[]
  request: (peer: string, request: Uint8Array, signal: AbortSignal) => Promise<Uint8Array>
}

export interface Writability {
  writable: boolean
  reason?: string
  reachable: number
  lastCommittee: string[]
  uptimeReachable: number
  uptimeUnreachable: number
}

export interface EpochSummary {
  epoch: number
  digest: string
  issuedAt: number
  committee: string[]
  signers: string[]
  candidates: string[]
}

const CATCH_UP_BATCH = 16
/** A responder that sent an epoch that failed the checks is not asked again for this long. */
const DISTRUST_MS = 60_000
/** A responder that did not answer (stalled, unreachable) is passed over for this long. */
const UNANSWERED_SKIP_MS = 15_000
/** Requests one catch-up run makes at most, over all the peers it asks. */
const CATCH_UP_REQUESTS_MAX = 64
/** What one proposal may carry of new or changed entries (the round input's limit is 768 KiB). */
const PROPOSAL_CHANGE_BYTES = 512 * 1024
const MAX_EPOCH_MESSAGE = 1024 * 1024

/** Header-only epochs adopted are handed to the header store in batches of this many (and at the end of each page). */
const HEADER_FLUSH = 32
/** The event loop gets a turn after this many header checks (links keep being pinged). */
const HEADERS_PER_TURN = 16

/** How often a head is announced while the latest epoch is new, and how rarely once it is old. */
const HEAD_EVERY_MS = 1000
const HEAD_QUIET_MAX_MS = 8000

/** No answer (unreachable, stalled past the transport's timeout, stream broke): not a lie. */
class CatchUpUnanswered extends Error {}

export interface CatchUpStats {
  requests: number
  adopted: number
  refusedResponders: number
  lastRefusal?: string
  /** Header pages fetched for a light sync, and the header-only epochs checked and adopted from them. */
  headerPages: number
  headersAdopted: number
  /** Why this node cannot catch up (behind further than members keep headers), while it cannot. */
  stranded?: string
}

export class PrimaryEpochs {
  readonly chain: EpochChain
  private readonly o: PrimaryEpochsOptions
  private readonly engine: RoundEngine
  private readonly topic: string
  private readonly log: ConsensusLogger
  private readonly built = new Map<string, BuiltEpoch>()
  private readonly judged = new Map<string, { verdict: string | undefined }>()
  private readonly nextAttempt = new Map<number, number>()
  private readonly answered = new Map<number, number>()
  private unsubscribe: (() => void) | undefined
  private cancelTick: (() => void) | undefined
  private runningRound: Promise<void> | undefined
  private abort = new AbortController()
  private lastHeadAt = 0
  /** When a head as new as this node's latest epoch last arrived from another node. */
  private lastPeerHeadAt = -Infinity
  /** The latest epoch's number when a tick last looked, and since when it is the latest: heads slow down with quiet. */
  private headEpoch = -1
  private headEpochSince = 0
  private lastNeedAt = 0
  private lastAnswerAt = 0
  private conflicts = 0
  private sinkQueue: Promise<void> = Promise.resolve()
  private catchingUp: Promise<void> | undefined
  /** Certified epochs adopted by header alone, not yet handed to the sink (see EpochSink.accept). */
  private readonly withoutEntries: Array<[Uint8Array, Uint8Array]> = []
  private catchUpTarget = 0
  /** The responder a light sync goes on with, and the epoch it has the headers up to (it holds the next one whole). */
  private lightSync: { peer: string, upTo: number } | undefined
  /** Responders that keep no header after the epoch this node holds, with the oldest they keep. */
  private strandClaims: { held: number, by: Map<string, number> } = { held: -1, by: new Map() }
  private lastCatchUpAt = 0
  /** Responders not asked again until then: a minute after a lie, a while after no answer. */
  private readonly skipUntil = new Map<string, number>()
  private readonly catchUpCounts: CatchUpStats = { requests: 0, adopted: 0, refusedResponders: 0, headerPages: 0, headersAdopted: 0 }

  constructor (options: PrimaryEpochsOptions) {
    this.o = options
    this.chain = new EpochChain({ keep: options.recentEpochs })
    this.engine = options.engine
    this.topic = consensusTopics(options.topicPrefix).epochs
    this.log = options.log ?? quietLogger
    const facts = options.source.readHeader(options.anchor.headerBytes)
    this.chain.anchor({ ...facts, headerBytes: options.anchor.headerBytes, certificate: options.anchor.certificate, committee: [], signers: [], entries: options.anchor.entries })
    this.engine.register(this.operation())
  }

  /** How long the first attempt on an epoch lasts (later ones grow, see AttemptSlots). */
  get slotMs (): number {
    return this.o.slotMs ?? 1500
  }

  get intervalMs (): number {
    return this.o.intervalMs ?? 30_000
  }

  start (): void {
    this.abort = new AbortController()
    this.unsubscribe = this.o.pubsub.subscribe(this.topic, (data) => this.receive(data))
    const every = this.o.tickMs ?? Math.min(1000, Math.max(20, this.intervalMs / 4))
    const loop = (): void => {
      this.cancelTick = this.engine.timers.after(every, () => { loop(); this.tick() })
    }
    loop()
  }

  private now (): number {
    return this.engine.timers.now()
  }

  async stop (): Promise<void> {
    this.cancelTick?.()
    this.cancelTick = undefined
    this.unsubscribe?.()
    this.abort.abort()
    await this.runningRound
    await this.catchingUp
  }

  /** Catch-up requests made, epochs adopted from them, responders refused for a bad epoch, light sync. */
  catchUpStats (): CatchUpStats {
    return { ...this.catchUpCounts }
  }

  /** The answer to a peer's request for epochs (the transport bounds who asks and how often). */
  serveCatchUp (request: Uint8Array): Uint8Array {
    return answerCatchUp(this.chain, decodeCatchUpRequest(request))
  }

  /** The answer to any catch-up request: epochs (serveCatchUp) or a page of kept headers (header-sync.ts). */
  async serve (request: Uint8Array): Promise<Uint8Array> {
    const raw = decodeMap(request, MAX_CATCH_UP_REQUEST_BYTES, 'catch-up request')
    if (!isHeaderPageRequest(raw)) return this.serveCatchUp(request)
    return await answerHeaderPage(this.chain, this.o.headers, headerPageRequestOf(raw), (h) => this.o.source.readHeader(h).epoch)
  }

  /** Starts catching up to `target` (one run at a time; a run in progress takes the higher target). */
  catchUpTo (target: number): void {
    this.catchUpTarget = Math.max(this.catchUpTarget, target)
    // Heads are not signed: a member announcing epochs that do not exist starts at most one run a second here.
    if (this.catchingUp !== undefined || this.o.catchUp === undefined || Date.now() - this.lastCatchUpAt < 1000) return
    this.lastCatchUpAt = Date.now()
    this.catchingUp = this.runCatchUp(this.o.catchUp)
      .catch((err: Error) => { this.log.debug({ err: err.message }, 'catch-up ended') })
      .finally(() => { this.catchingUp = undefined })
  }

  private held (): number {
    return (this.chain.latest() as EpochRecord).epoch
  }

  private async runCatchUp (transport: CatchUpTransport): Promise<void> {
    let requests = 0
    for (const peer of transport.peers()) {
      if (peer === this.engine.self) continue
      if ((this.skipUntil.get(peer) ?? 0) > Date.now()) continue
      while (this.held() < this.catchUpTarget && requests < CATCH_UP_REQUESTS_MAX && !this.abort.signal.aborted) {
        requests++
        let adopted: number
        try {
          adopted = await this.askOnce(transport, peer)
        } catch (err) {
          // A lie, a stall or a broken stream: this responder is done; the next one is asked.
          if (!(err instanceof CatchUpUnanswered)) {
            this.skip(peer, DISTRUST_MS)
            this.catchUpCounts.refusedResponders++
            this.catchUpCounts.lastRefusal ??= (err as Error).message
            this.log.warn({ peer, err: (err as Error).message }, 'catch-up responder sent an epoch that fails the checks; asking another')
          } else {
            this.skip(peer, UNANSWERED_SKIP_MS)
            this.log.debug({ peer, err: (err as Error).message }, 'catch-up request failed; asking another')
          }
          break
        }
        if (adopted === 0) break
      }
      if (this.held() >= this.catchUpTarget || requests >= CATCH_UP_REQUESTS_MAX || this.abort.signal.aborted) return
    }
  }

  private skip (peer: string, ms: number): void {
    this.skipUntil.set(peer, Date.now() + ms)
    if (this.skipUntil.size > 1024) this.skipUntil.delete(this.skipUntil.keys().next().value as string)
  }

  /** Sends one request; a failure to get an answer is CatchUpUnanswered (not a lie). */
  private async ask (transport: CatchUpTransport, peer: string, request: Uint8Array): Promise<Uint8Array> {
    this.catchUpCounts.requests++
    try {
      return await transport.request(peer, request, this.abort.signal)
    } catch (err) {
      throw new CatchUpUnanswered((err as Error).message)
    }
  }

  /** One request to `peer`; adopts what it sends in order and returns how many epochs it added. */
  private async askOnce (transport: CatchUpTransport, peer: string): Promise<number> {
    const latest = this.chain.latest() as EpochRecord
    if (this.lightSync?.peer === peer && latest.epoch < this.lightSync.upTo) return await this.askHeaders(transport, peer, this.lightSync.upTo)
    const request = { from: latest.epoch + 1, max: MAX_CATCH_UP_EPOCHS, base: latest.entries !== undefined }
    const bytes = await this.ask(transport, peer, encodeCatchUpRequest(request))
    // From here every failure is the responder's: what it sent does not decode or fails a check.
    const response = decodeCatchUpResponse(bytes, request)
    // It holds newer epochs but no longer the ones asked for whole: check the headers up to the
    // epoch before its latest (which it holds whole), then ask for that one.
    if (response.items.length === 0 && response.held - 1 > latest.epoch) {
      this.lightSync = { peer, upTo: response.held - 1 }
      return await this.askHeaders(transport, peer, response.held - 1)
    }
    let adopted = 0
    for (let i = 0; i < response.items.length; i++) {
      // An epoch this node adopted while the answer was on its way (its certificate came by
      // gossip) is not checked again: comparing a liar's copy with it would count as a conflict,
      // and an honest copy can fail the in-order checks against a chain that moved on.
      if ((this.chain.latest() as EpochRecord).epoch >= request.from + i) continue
      if (await this.adoptItem(request.from + i, response.items[i])) {
        adopted++
        this.catchUpCounts.adopted++
      }
    }
    this.flushHeaders()
    return adopted
  }

  /**
   * Light sync: one page of certified headers from `peer`, up to `upTo`, each adopted by header
   * alone with the checks of adopt (certificate of the committee drawn from the header before, a
   * header that extends the held chain, no conflict). Returns how many it added.
   */
  private async askHeaders (transport: CatchUpTransport, peer: string, upTo: number): Promise<number> {
    const from = (this.chain.latest() as EpochRecord).epoch + 1
    const request = { headers: from, max: Math.min(MAX_HEADER_PAGE, upTo - from + 1) }
    this.catchUpCounts.headerPages++
    const bytes = await this.ask(transport, peer, encodeHeaderPageRequest(request))
    const page = decodeHeaderPage(bytes, request)
    if (page.headers.length === 0) {
      if (page.oldest > from && page.held >= from) this.strandClaim(peer, from - 1, page.oldest, page.held)
      throw new CatchUpUnanswered(`no headers from epoch ${from} (the responder keeps them from epoch ${page.oldest})`)
    }
    let adopted = 0
    try {
      for (let i = 0; i < page.headers.length; i++) {
        if (i % HEADERS_PER_TURN === HEADERS_PER_TURN - 1) await new Promise(resolve => setTimeout(resolve, 0))
        if (this.abort.signal.aborted) break
        const [headerBytes, certificate] = page.headers[i]
        // An epoch that came by gossip meanwhile is not checked again (see askOnce).
        if ((this.chain.latest() as EpochRecord).epoch >= from + i) continue
        const facts = this.o.source.readHeader(headerBytes)
        if (facts.epoch !== from + i) throw new CatchUpProtocolError(`header page holds epoch ${facts.epoch} where epoch ${from + i} was due`)
        if (await this.adopt(headerBytes, certificate, undefined)) adopted++
      }
    } finally {
      this.catchUpCounts.headersAdopted += adopted
      this.flushHeaders()
    }
    return adopted
  }

  /**
   * A responder says it keeps no header this node could go on from. Once f+1 responders said so
   * for the epoch this node holds (so one honest member at least: a liar alone cannot make it
   * stop voting), this node says in the log once, and in writability() while it lasts, that it
   * is behind further than members keep headers.
   */
  private strandClaim (peer: string, held: number, oldest: number, newest: number): void {
    if (this.strandClaims.held !== held) this.strandClaims = { held, by: new Map() }
    this.strandClaims.by.set(peer, oldest)
    if (this.strandClaims.by.size < this.engine.f + 1) return
    oldest = Math.min(...this.strandClaims.by.values())
    const retention = this.o.headers?.retention
    const reason = `cannot catch up: this node holds epoch ${held}, and members keep certified headers only from epoch ${oldest} on (newest ${newest}${retention === undefined ? '' : `; a retention of ${retention} epochs`}): the chain to the newest epoch cannot be checked, so nothing is adopted`
    if (this.catchUpCounts.stranded === undefined) this.log.error({ held, oldest, newest }, reason)
    this.catchUpCounts.stranded = reason
  }

  /** Hands the header-only epochs adopted so far to the header store, in chain order with the sink. */
  private flushHeaders (): void {
    const store = this.o.headers
    if (store === undefined || this.withoutEntries.length === 0) return
    const pairs: HeaderPair[] = this.withoutEntries.splice(0)
    this.sinkQueue = this.sinkQueue.then(async () => await store.keep(pairs)).catch((err: Error) => this.log.error({ err: err.message }, 'the header store refused certified headers'))
  }

  /** Checks one catch-up item exactly as an epoch from gossip (adopt), in the order asked. */
  private async adoptItem (expected: number, item: CatchUpItem): Promise<boolean> {
    if ('d' in item) {
      const previous = this.chain.get(expected - 1)
      if (previous?.entries === undefined) throw new CatchUpProtocolError(`a delta for epoch ${expected} without the entries of epoch ${expected - 1} here`)
      const body = decodeEpochProposal(item.d, { epoch: previous.epoch, digest: previous.digest, issuedAt: previous.issuedAt, entries: previous.entries })
      const built = this.o.source.build(body)
      return await this.adopt(built.headerBytes, item.c, built.entries, true)
    }
    const facts = this.o.source.readHeader(item.h)
    if (facts.epoch !== expected) throw new CatchUpProtocolError(`catch-up item for epoch ${facts.epoch} where epoch ${expected} was due`)
    return await this.adopt(item.h, item.c, item.e ?? undefined)
  }

  /** For the simulator's debug output: whether a round is running and the next attempt per epoch. */
  debugState (): string {
    return `round ${this.runningRound !== undefined}, next ${JSON.stringify([...this.nextAttempt])}`
  }

  /** Conflicting certified epochs seen and refused (must stay 0 on an honest network). */
  conflictsRefused (): number {
    return this.conflicts
  }

  /** Recent certified epochs, newest first (for `mycelium spores epochs --json`). */
  epochs (limit = 16): EpochSummary[] {
    return this.chain.recent(limit).map(r => ({ epoch: r.epoch, digest: toHex(r.digest), issuedAt: r.issuedAt, committee: r.committee, signers: r.signers, candidates: r.candidates }))
  }

  /** The committee of the next epoch (drawn from the latest epoch's candidates); empty without 3f+1 of them. */
  lastCommittee (): string[] {
    const latest = this.chain.latest() as EpochRecord
    return selectCommittee(latest.candidates, latest.digest, this.engine.f, this.engine.committeeSize)
  }

  writability (): Writability {
    const latest = this.chain.latest() as EpochRecord
    const self = this.engine.self
    const last = this.lastCommittee()
    const reach = (p: string): boolean => p === self || this.o.isConnected(p)
    const reachable = last.filter(reach).length
    const known = [...new Set([...latest.candidates, ...last])]
    let up = 0
    let down = 0
    let firstUp = ''
    let firstDown = ''
    for (const p of known) {
      const w = this.engine.uptime.weight(p)
      if (reach(p)) {
        up += w
        if (firstUp === '' || p < firstUp) firstUp = p
      } else {
        down += w
        if (firstDown === '' || p < firstDown) firstDown = p
      }
    }
    const base = { reachable, lastCommittee: last, uptimeReachable: up, uptimeUnreachable: down }
    const stranded = this.catchUpCounts.stranded
    if (stranded !== undefined) return { ...base, writable: false, reason: stranded }
    const short = shortfall(latest.candidates, this.engine.f)
    if (short !== undefined) return { ...base, writable: false, reason: `${short}: no committee (the node does not run at a weaker f)` }
    if (reachable < quorumOf(this.engine.f, last.length)) return { ...base, writable: false, reason: 'cannot reach a quorum (2f+1) of the last committee' }
    if (down > 0 && (up < down || (up === down && firstDown < firstUp))) return { ...base, writable: false, reason: 'less differential uptime than the unreachable peers' }
    return { ...base, writable: true }
  }

  isReadOnly (): boolean {
    return !this.writability().writable
  }

  /** Runs the round for the next epoch now (the timer calls this when the interval is up). */
  async runNext (): Promise<EpochRecord> {
    const latest = this.chain.latest() as EpochRecord
    const n = latest.epoch + 1
    const first = Math.max(this.nextAttempt.get(n) ?? 0, this.engine.nextAttemptOf(epochKey(n)))
    const maxAttempts = this.o.maxAttempts ?? 64
    try {
      await this.engine.run(EPOCH_OPERATION, epochKey(n), async () => await this.proposal(n), { signal: this.abort.signal, maxAttempts, firstAttempt: first, slots: { from: latest.issuedAt + this.intervalMs, ms: this.slotMs } })
    } catch (err) {
      if (!(err instanceof RoundFailedError) || err.reason !== 'already-certified') {
        if (err instanceof RoundFailedError) this.nextAttempt.set(n, Math.max(first + 1, err.attempt + 1))
        throw err
      }
    }
    await this.sinkQueue
    const record = this.chain.get(n)
    if (record === undefined) throw new RoundFailedError('no-quorum', first, `epoch ${n} was certified but could not be adopted`)
    return record
  }

  private tick (): void {
    const latest = this.chain.latest() as EpochRecord
    const self = this.engine.self
    for (const p of latest.candidates) if (p === self || this.o.isConnected(p)) this.engine.uptime.seen(p)
    const now = this.now()
    // One head per period for the whole network, not one per node: a node whose latest epoch
    // another node announced within the period stays quiet (a node behind still hears that head
    // within the period and asks; a node ahead of what it hears still announces). N heads a
    // second were each node's largest share of idle gossip, and grew with N. The period grows
    // with quiet, from 1 s when the latest epoch is new to 8 s: a head repairs a missed
    // certified epoch, most likely missed just after it was certified, and a member that
    // (re)connects fetches the latest epoch from its peer anyway. One head a second was still
    // most of an idle node's gossip at 20 nodes.
    if (latest.epoch !== this.headEpoch) {
      this.headEpoch = latest.epoch
      this.headEpochSince = now
    }
    const period = Math.min(this.intervalMs, Math.max(HEAD_EVERY_MS, Math.min(HEAD_QUIET_MAX_MS, (now - this.headEpochSince) / 2)))
    if (now - this.lastHeadAt >= period && now - this.lastPeerHeadAt >= period) {
      this.lastHeadAt = now
      this.publish({ t: 'head', epoch: latest.epoch, digest: latest.digest })
    }
    const w = this.writability()
    this.engine.metrics.setReadOnly(!w.writable)
    if (this.runningRound !== undefined || !latest.candidates.includes(self) || !w.writable) return
    if (now < latest.issuedAt + this.intervalMs) return
    this.runningRound = this.runNext().then(
      (r) => { this.log.info({ epoch: r.epoch }, 'primary epoch certified') },
      (err: Error) => { this.log.info({ err: err.message }, 'primary epoch round did not certify') }
    ).finally(() => { this.runningRound = undefined })
  }

  /** The certified epoch before `n` as the content rules read it, if this node holds it with its entries. */
  private previousFacts (n: number): PreviousEpochFacts | undefined {
    const r = this.chain.get(n - 1)
    return r?.entries === undefined ? undefined : { epoch: r.epoch, digest: r.digest, issuedAt: r.issuedAt, candidates: r.candidates, entries: r.entries }
  }

  private async proposal (n: number): Promise<Uint8Array> {
    const previous = this.previousFacts(n)
    if (previous === undefined) throw new RoundFailedError('invalid-input', 0, `the entries of epoch ${n - 1} are not held here`)
    const issuedAt = Math.max(this.now(), previous.issuedAt + 1)
    const { entries, candidates } = await this.o.source.propose(previous, issuedAt, this.abort.signal, PROPOSAL_CHANGE_BYTES)
    const body: EpochBody = { epoch: n, prev: previous.digest, issuedAt, entries, candidates }
    return encodeEpochProposal(this.o.proposalConduct?.(body, previous) ?? body, previous)
  }

  /** What breaks the content rules in a proposed input, judged from the certified chain only. */
  private violation (key: string, input: Uint8Array): string | undefined {
    const previous = this.previousFacts(Number(key.slice('epoch:'.length)))
    if (previous === undefined) return undefined
    // Judged once per input: the same proposal is checked on arrival, when voting and for evidence.
    const id = `${key}|${toHex(previous.digest)}|${toHex(sha256(input))}`
    if (this.judged.has(id)) return this.judged.get(id)?.verdict
    const verdict = this.judge(key, input, previous)
    if (this.judged.size >= 32) this.judged.delete(this.judged.keys().next().value as string)
    this.judged.set(id, { verdict })
    return verdict
  }

  private judge (key: string, input: Uint8Array, previous: PreviousEpochFacts): string | undefined {
    let body: EpochBody
    try {
      body = this.parseBody(key, input)
    } catch (err) {
      return (err as Error).message
    }
    return this.o.source.violation(body, previous)
  }

  /** The full body of a proposed input, rebuilt against the previous epoch (epoch-delta.ts). */
  private parseBody (key: string, input: Uint8Array): EpochBody {
    const n = Number(key.slice('epoch:'.length))
    const previous = this.chain.get(n - 1)
    if (previous === undefined) throw new TypeError('epoch proposal: wrong epoch number')
    if (previous.entries === undefined) throw new TypeError(`the entries of epoch ${n - 1} are not held here`)
    return decodeEpochProposal(input, { epoch: previous.epoch, digest: previous.digest, issuedAt: previous.issuedAt, entries: previous.entries })
  }

  private async buildFor (key: string, input: Uint8Array): Promise<BuiltEpoch> {
    const id = toHex(sha256(input))
    let built = this.built.get(id)
    if (built === undefined) {
      built = await this.o.source.build(this.parseBody(key, input))
      if (this.built.size > 16) this.built.delete(this.built.keys().next().value as string)
      this.built.set(id, built)
    }
    return built
  }

  private operation (): Operation {
    return {
      name: EPOCH_OPERATION,
      objective: true,
      proposers: 'leader',
      context: (key) => {
        const prev = this.chain.get(Number(key.slice('epoch:'.length)) - 1)
        return prev === undefined ? undefined : { candidates: prev.candidates, seed: prev.digest }
      },
      refusal: (key): RoundFailureReason | undefined => {
        if (this.chain.get(Number(key.slice('epoch:'.length))) !== undefined) return 'already-certified'
        return this.writability().writable ? undefined : 'read-only'
      },
      violation: (key, input) => this.violation(key, input),
      evaluate: async (key, input, _signal, justified) => {
        const body = this.parseBody(key, input)
        const skew = this.o.maxClockSkewMs ?? 15_000
        if (!justified && Math.abs(body.issuedAt - this.now()) > skew) throw new TypeError(`epoch body: issuedAt is more than ${skew} ms from this node's clock`)
        if (this.previousFacts(body.epoch) === undefined) throw new TypeError(`the entries of epoch ${body.epoch - 1} are not held here`)
        const wrong = this.violation(key, input)
        if (wrong !== undefined) throw new TypeError(wrong)
        return (await this.buildFor(key, input)).digest
      },
      certified: (cert, input) => { void this.adoptCertified(cert, input) }
    }
  }

  private async adoptCertified (cert: Certificate, input: Uint8Array | undefined): Promise<void> {
    if (input === undefined) return
    try {
      const built = await this.buildFor(cert.header.key, input)
      await this.adopt(built.headerBytes, cert.bytes, built.entries, true)
    } catch (err) {
      this.log.warn({ key: cert.header.key, err: (err as Error).message }, 'certified epoch not adopted')
    }
  }

  /** Checks a certified epoch against the held chain and adopts it; returns false if already held. */
  async adopt (headerBytes: Uint8Array, certificate: Uint8Array, entries: Uint8Array[] | undefined, builtHere = false): Promise<boolean> {
    const facts = this.o.source.readHeader(headerBytes)
    try {
      this.chain.assertNoConflict(facts.epoch, facts.digest)
    } catch (err) {
      if (err instanceof ConflictingEpochError) {
        this.conflicts++
        this.engine.metrics.conflictRefused()
        this.log.error({ epoch: facts.epoch }, 'refused an epoch that conflicts with a certified one')
      }
      throw err
    }
    const previous = this.chain.get(facts.epoch - 1)
    if (previous === undefined) {
      const latest = this.chain.latest() as EpochRecord
      if (facts.epoch <= latest.epoch) return false
      throw new EpochGapError(`epoch ${facts.epoch} does not follow the held epoch ${latest.epoch}`)
    }
    const cert = checkEpochCertificate({ header: { epoch: facts.epoch, committee: facts.candidates }, digest: facts.digest, certificate }, { header: { committee: previous.candidates }, digest: previous.digest }, { f: this.engine.f, committeeSize: this.engine.committeeSize })
    // A certificate is what the committee agreed on, but entries that came with it from a peer
    // are checked against it: they must build exactly the certified header.
    if (entries !== undefined && !builtHere && !equalBytes(this.o.source.build({ epoch: facts.epoch, prev: previous.digest, issuedAt: facts.issuedAt, entries, candidates: facts.candidates }).headerBytes, headerBytes)) throw new CertificateInvalidError(`the entries of epoch ${facts.epoch} do not build its header`)
    const record: EpochRecord = { ...facts, headerBytes, certificate, committee: cert.header.committee, signers: signersOf(cert), entries }
    if (!this.chain.add(record)) return false
    delete this.catchUpCounts.stranded
    this.nextAttempt.delete(facts.epoch)
    this.engine.refresh()
    // The sink sees epochs one at a time, in chain order.
    // An epoch without entries is held for the chain only; the sink gets it with the next one that has them.
    if (entries === undefined) {
      this.withoutEntries.push([headerBytes, certificate])
      if (this.withoutEntries.length >= HEADER_FLUSH) this.flushHeaders()
      return true
    }
    const between = this.withoutEntries.splice(0)
    const handoff = this.sinkQueue.then(async () => await this.o.sink.accept({ epoch: record.epoch, digest: record.digest, headerBytes, entries, certificate, committee: record.committee, signers: record.signers }, between.length > 0 ? between : undefined))
    this.sinkQueue = handoff.catch((err: Error) => this.log.error({ epoch: record.epoch, err: err.message }, 'primary tier refused a certified epoch'))
    await handoff
    return true
  }

  // ---- heads on the epochs topic; without a catch-up transport, requests and epochs there too ----

  private publish (message: object): void {
    this.o.pubsub.publish(this.topic, encodeCanonical(message)).catch((err: Error) => this.log.debug({ err: err.message }, 'epoch publish failed'))
  }

  private receive (data: Uint8Array): void {
    if (data.length > MAX_EPOCH_MESSAGE) return
    let m: Record<string, unknown>
    try {
      m = decodeCanonical(data) as Record<string, unknown>
    } catch {
      return
    }
    if (m === null || typeof m !== 'object') return
    const latest = this.chain.latest() as EpochRecord
    const now = this.now()
    if (m.t === 'head' && typeof m.epoch === 'number' && Number.isSafeInteger(m.epoch) && m.digest instanceof Uint8Array) {
      const held = this.chain.get(m.epoch)
      if (held !== undefined && !equalBytes(held.digest, m.digest)) this.log.error({ epoch: m.epoch }, 'a peer announces another digest for a certified epoch')
      else if (m.epoch >= latest.epoch) this.lastPeerHeadAt = now
      if (m.epoch > latest.epoch && this.o.catchUp !== undefined) this.catchUpTo(m.epoch)
      else if (m.epoch > latest.epoch && now - this.lastNeedAt > 500) {
        this.lastNeedAt = now
        this.publish({ t: 'need', from: latest.epoch + 1 })
      }
    } else if (this.o.catchUp !== undefined) {
      // Catch-up goes by request/response: whole epochs on gossip are neither asked for nor taken.
    } else if (m.t === 'need' && typeof m.from === 'number' && Number.isSafeInteger(m.from) && m.from >= 0) {
      // Bounded answers: one batch per requested start per 500 ms, and one batch per 100 ms overall.
      if (m.from > latest.epoch || now - (this.answered.get(m.from) ?? 0) < 500 || now - this.lastAnswerAt < 100) return
      this.answered.set(m.from, now)
      this.lastAnswerAt = now
      if (this.answered.size > 256) this.answered.delete(this.answered.keys().next().value as number)
      for (let n = m.from; n <= Math.min(latest.epoch, m.from + CATCH_UP_BATCH - 1); n++) {
        const r = this.chain.get(n)
        // The first epoch is the root's (peers fetch it from the spores' epoch service); every later one
        // is served, the anchor a restarted node holds without its committee included.
        if (r === undefined || r.epoch === 0) continue
        this.publish({ t: 'epoch', headerBytes: r.headerBytes, certificate: r.certificate, entries: r.entries ?? null })
      }
    } else if (m.t === 'epoch' && m.headerBytes instanceof Uint8Array && m.certificate instanceof Uint8Array && (m.entries === null || (Array.isArray(m.entries) && m.entries.every(e => e instanceof Uint8Array)))) {
      const entries = m.entries === null ? undefined : m.entries as Uint8Array[]
      void this.adopt(m.headerBytes, m.certificate, entries).catch((err: Error) => {
        if (err instanceof EpochGapError && now - this.lastNeedAt > 500) {
          this.lastNeedAt = now
          this.publish({ t: 'need', from: latest.epoch + 1 })
        } else if (!(err instanceof EpochGapError) && !(err instanceof CertificateInvalidError) && !(err instanceof ConflictingEpochError)) {
          this.log.debug({ err: err.message }, 'epoch from a peer rejected')
        }
      })
    }
  }
}
