// Latent gossip: every new entry is published on the network's latent topic; every received
// message is merged validation-first inside gossipsub's topic validator, so an invalid entry
// is neither stored nor forwarded (Reject lowers the sender's gossipsub score), and a replay
// is dropped quietly (Ignore). Messages arriving together are merged in one batch.
import { decodeEntry, type SignedEntry } from '../entry/entry.ts'
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
    // A writer past its share of a type is penalised when it sends its own entries; a peer that
    // merely forwards them (its own count may differ) is not.
    if (outcome.reason === 'origin-limit' && originOf(data) !== from) {
      this.stats.ignored++
      return 'ignore'
    }
    if (outcome.reason === 'replay' || outcome.reason === 'higher-tier-conflict' || outcome.reason === 'limit') {
      this.stats.ignored++
      return 'ignore'
    }
    this.stats.rejected++
    return 'reject'
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

function originOf (data: Uint8Array): string | undefined {
  try {
    return decodeEntry(data).origin
  } catch {
    return undefined
  }
}
