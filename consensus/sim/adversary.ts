// A Byzantine member's attacks beyond its conduct as a voter (conduct.ts): with its own key it
// signs and sends, on the rounds and evidence topics, what an honest engine never would:
//   bad-content          a proposal breaking the content rules (world.ts BadContent)
//   equivocate-proposal  two inputs for one of its attempts, one to each half of the members
//   flood-attempts       proposals for attempts far ahead (up to the last attempt number)
//   forged-evidence      evidence against honest members: their honest proposal as a
//                        "bad proposal", two of their commits from different rounds as an
//                        equivocation, a committee of its own making, and garbage bytes
import { signMessage, decodeMessage, MAX_ATTEMPT, type MessageSigner, type Signed, type ProposalBody, type CommitBody } from '../messages.ts'
import { buildEvidence } from '../evidence.ts'
import { proposerOf } from '../committee.ts'
import { inputDigestOf, type RoundHeader } from '../round.ts'
import { consensusTopics } from '../pubsub.ts'
import { EPOCH_OPERATION, epochKey } from '../epoch-certificate.ts'
import { encodeEpochProposal } from '../epoch-delta.ts'
import type { Consensus } from '../consensus.ts'
import type { EpochBody, PreviousEpochFacts } from '../primary-epochs.ts'
import type { SimNetwork } from './network.ts'
import type { Scheduler } from './scheduler.ts'
import type { Prng } from './prng.ts'
import type { SimWorld, BadContent } from './world.ts'

export type Attack = 'bad-content' | 'equivocate-proposal' | 'flood-attempts' | 'forged-evidence'
export const ATTACKS: readonly Attack[] = ['bad-content', 'equivocate-proposal', 'flood-attempts', 'forged-evidence']

export interface AdversaryOptions {
  plan: { attacks: Attack[], badContent: BadContent }
  consensus: Consensus
  signer: MessageSigner
  net: SimNetwork
  index: number
  members: number
  world: SimWorld
  scheduler: Scheduler
  rng: Prng
  topicPrefix: string
}

const CAPTURED_MAX = 24

export class Adversary {
  private readonly o: AdversaryOptions
  private readonly topics: ReturnType<typeof consensusTopics>
  private readonly done = new Set<string>()
  private readonly proposals: Array<Signed<ProposalBody>> = []
  private readonly commits: Array<Signed<CommitBody>> = []
  private stopped = false
  private unsubscribe: (() => void) | undefined

  constructor (options: AdversaryOptions) {
    this.o = options
    this.topics = consensusTopics(options.topicPrefix)
  }

  start (): void {
    this.unsubscribe = this.o.net.pubsubFor(this.o.index).subscribe(this.topics.rounds, (data) => this.capture(data))
    const loop = (): void => {
      if (this.stopped) return
      void this.act()
      this.o.scheduler.after(150, loop, this.o.index)
    }
    loop()
  }

  stop (): void {
    this.stopped = true
    this.unsubscribe?.()
  }

  /** Keeps a few honest messages to forge evidence from. */
  private capture (data: Uint8Array): void {
    if (!this.o.plan.attacks.includes('forged-evidence') || (this.proposals.length >= CAPTURED_MAX && this.commits.length >= CAPTURED_MAX)) return
    try {
      const m = decodeMessage(data)
      if (m.body.from === this.o.signer.peerId) return
      if (m.body.t === 'proposal' && this.proposals.length < CAPTURED_MAX) this.proposals.push(m as Signed<ProposalBody>)
      if (m.body.t === 'commit' && this.commits.length < CAPTURED_MAX) this.commits.push(m as Signed<CommitBody>)
    } catch {}
  }

  private once (what: string): boolean {
    if (this.done.has(what)) return false
    this.done.add(what)
    return true
  }

  private async act (): Promise<void> {
    const c = this.o.consensus
    const latest = c.epochs.chain.latest()
    if (latest?.entries === undefined) return
    const key = epochKey(latest.epoch + 1)
    const committee = c.engine.committeeOf(EPOCH_OPERATION, key)
    const self = this.o.signer.peerId
    if (committee === undefined || !committee.includes(self)) return
    const previous: PreviousEpochFacts = { epoch: latest.epoch, digest: latest.digest, issuedAt: latest.issuedAt, candidates: latest.candidates, entries: latest.entries }
    const current = c.engine.nextAttemptOf(key)
    const mine = committee.indexOf(self)
    const attempt = current + ((mine - (current % committee.length)) + committee.length) % committee.length
    const header = (inputDigest: Uint8Array, a: number): RoundHeader => ({ op: EPOCH_OPERATION, key, seed: latest.digest, inputDigest, committee, attempt: a, f: c.engine.f })
    const send = (body: EpochBody, a: number, only?: number[]): void => {
      const input = encodeEpochProposal(body, previous)
      const p = signMessage(this.o.signer, { t: 'proposal', from: self, header: header(inputDigestOf(input), a), input, polka: null })
      this.o.net.send(this.o.index, this.topics.rounds, p.bytes, only)
    }
    const now = this.o.scheduler.now()
    const honest = committee.filter(p => p !== self)
    for (const attack of this.o.plan.attacks) {
      if (!this.once(`${attack}|${key}|${attempt}`)) continue
      if (proposerOf(committee, attempt) !== self) continue
      switch (attack) {
        case 'bad-content':
          send(await this.o.world.badBody(this.o.plan.badContent, previous, this.o.signer, now, honest), attempt)
          break
        case 'equivocate-proposal': {
          const all = Array.from({ length: this.o.members }, (_, i) => i).filter(i => i !== this.o.index)
          const half = all.filter(() => this.o.rng.chance(0.5))
          send(await this.o.world.body(this.o.index, previous, now), attempt, half)
          send(await this.o.world.body(this.o.index, previous, now + 1), attempt, all.filter(i => !half.includes(i)))
          break
        }
        case 'flood-attempts': {
          const body = await this.o.world.body(this.o.index, previous, now)
          for (let k = 1; k <= 8; k++) {
            const far = Math.min(MAX_ATTEMPT - committee.length, attempt + k * 97 * committee.length)
            send(body, far - (far % committee.length) + mine)
          }
          break
        }
        case 'forged-evidence':
          this.forgeEvidence()
          break
      }
    }
  }

  private forgeEvidence (): void {
    const publish = (bytes: Uint8Array): void => this.o.net.send(this.o.index, this.topics.evidence, bytes)
    const p = this.proposals[this.o.rng.int(0, Math.max(0, this.proposals.length - 1))]
    if (p !== undefined) {
      publish(buildEvidence('bad-proposal', p.body.from, p.body.header, [p]).bytes)
      // A committee of its own making around the victim, with f = 0.
      const forged = { ...p.body.header, committee: [p.body.from], f: 0 }
      publish(buildEvidence('bad-proposal', p.body.from, forged, [p]).bytes)
    }
    const byMember = new Map<string, Array<Signed<CommitBody>>>()
    for (const c of this.commits) byMember.set(c.body.from, [...(byMember.get(c.body.from) ?? []), c])
    for (const [member, list] of byMember) {
      const owner = this.proposals.find(x => x.body.header.committee.includes(member))
      if (list.length >= 2 && owner !== undefined) publish(buildEvidence('equivocate', member, owner.body.header, [list[0], list[1]]).bytes)
    }
    publish(this.o.rng.bytes(this.o.rng.int(1, 400)))
  }
}
