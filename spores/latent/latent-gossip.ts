// Latent gossip: every new entry is published on the network's latent topic; every received
// message is merged validation-first inside gossipsub's topic validator, so an invalid entry
// is neither stored nor forwarded, and the sender is blamed (Reject, which lowers its gossipsub
// score) only for what it provably did wrong (latentVerdict below); a replay is dropped quietly
// (Ignore). Messages arriving together are merged in one batch.
import { decodeEntry, type SignedEntry } from '../entry/entry.ts'
import type { RejectionReason } from '../merge/rejection.ts'
import type { SporeMerger, MergeOutcome } from '../merge/spore-merger.ts'
import type { SporePubSub } from '../host.ts'
import type { SporeLogger } from '../logger.ts'
import type { TopicValidatorResult } from '@libp2p/gossipsub'

export interface GossipStats {
  published: number
  received: number
  accepted: number
  ignored: number
  rejected: number
}

const MAX_WAITING = 4096

interface Waiting {
  data: Uint8Array
  /** undefined when the merge itself failed (the database), which says nothing about the sender */
  resolve: (outcome: MergeOutcome | undefined) => void
}

export class LatentGossip {
  readonly topic: string
  readonly stats: GossipStats = { published: 0, received: 0, accepted: 0, ignored: 0, rejected: 0 }
  private readonly pubsub: SporePubSub
  private readonly merger: SporeMerger
  private readonly log: SporeLogger
  private waiting: Waiting[] = []
  private flushScheduled = false

  constructor (options: { pubsub: SporePubSub, topic: string, merger: SporeMerger, log: SporeLogger }) {
    this.pubsub = options.pubsub
    this.topic = options.topic
    this.merger = options.merger
    this.log = options.log
  }

  start (): void {
    this.pubsub.topicValidators.set(this.topic, async (peer, message) => await this.validate(message.data, String(peer)) as TopicValidatorResult)
    this.pubsub.subscribe(this.topic)
  }

  stop (): void {
    this.pubsub.unsubscribe(this.topic)
    this.pubsub.topicValidators.delete(this.topic)
  }

  async publish (entry: SignedEntry): Promise<void> {
    try {
      await this.pubsub.publish(this.topic, entry.bytes)
      this.stats.published++
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'latent gossip publish failed')
    }
  }

  private async validate (data: Uint8Array, from: string): Promise<'accept' | 'ignore' | 'reject'> {
    this.stats.received++
    // a flood beyond what one merge batch can take is dropped unforwarded; sync repairs any loss
    if (this.waiting.length >= MAX_WAITING) {
      this.stats.ignored++
      return 'ignore'
    }
    const outcome = await new Promise<MergeOutcome | undefined>((resolve) => {
      this.waiting.push({ data, resolve })
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => { void this.flush() })
      }
    })
    if (outcome === undefined) {
      this.stats.ignored++
      return 'ignore'
    }
    if (outcome.status === 'merged') {
      this.stats.accepted++
      return 'accept'
    }
    const verdict = latentVerdict(outcome.reason, data, from)
    if (verdict === 'reject') this.stats.rejected++
    else this.stats.ignored++
    return verdict
  }

  private async flush (): Promise<void> {
    this.flushScheduled = false
    const batch = this.waiting
    this.waiting = []
    try {
      const outcomes = await this.merger.merge('latent', batch.map(w => w.data))
      batch.forEach((w, i) => w.resolve(outcomes[i]))
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'latent merge failed')
      for (const w of batch) w.resolve(undefined)
    }
  }
}

/**
 * 'reject' (gossipsub lowers the sender's score: node/host/gossip-score.ts) only for what the
 * sender is provably to blame for, 'ignore' for the rest. Anyone can check the envelope and
 * the signature, and an honest peer forwards only what passed those same checks. Membership,
 * grants, clocks, limits and what a node already holds differ between views (a member
 * admitted a second ago, a grant not yet seen, a skewed clock): an entry refused for those
 * reasons is blamed on its origin when the origin itself sent it (its own share of a type, a
 * key it may not write), and never on a peer that merely forwards it. Time-bound reasons are
 * never blamed (the origin's clock may be honestly off), nor is a value's schema: a newer
 * version may carry a type or a field this one does not know yet.
 */
export function latentVerdict (reason: RejectionReason, data: Uint8Array, from: string): 'reject' | 'ignore' {
  switch (reason) {
    case 'oversized':
    case 'malformed':
    case 'bad-signature':
      return 'reject'
    case 'unauthorized-origin':
    case 'origin-limit':
      return originOf(data) === from ? 'reject' : 'ignore'
    default:
      return 'ignore'
  }
}

function originOf (data: Uint8Array): string | undefined {
  try {
    return decodeEntry(data).origin
  } catch {
    return undefined
  }
}
