// The transport the engine needs: publish bytes on a topic, and subscribe with a handler.
// gossipsubTransport adapts a js-libp2p gossipsub service to it.
export type Verdict = 'accept' | 'reject' | 'ignore'

export interface ConsensusPubSub {
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  /** Calls `handler` for every message on `topic` from another node; returns the unsubscribe. */
  subscribe: (topic: string, handler: (data: Uint8Array) => void) => () => void
  /**
   * Judges messages on `topic` before they are delivered or forwarded: 'reject' marks the peer
   * that sent it (gossipsub lowers its score and stops forwarding), 'ignore' drops it without
   * blame. Optional: a transport without it delivers everything to the handler.
   */
  validate?: (topic: string, judge: (data: Uint8Array) => Verdict) => () => void
}

/** The part of a gossipsub service used here (@libp2p/gossipsub satisfies it). */
export interface GossipsubLike {
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  topicValidators?: Map<string, (peer: unknown, message: { data: Uint8Array }) => Verdict | Promise<Verdict>>
  addEventListener: (type: 'message', listener: (evt: CustomEvent<{ topic: string, data: Uint8Array }>) => void) => void
  removeEventListener: (type: 'message', listener: (evt: CustomEvent<{ topic: string, data: Uint8Array }>) => void) => void
}

export function gossipsubTransport (gossipsub: GossipsubLike): ConsensusPubSub {
  return {
    async publish (topic, data) {
      try {
        return await gossipsub.publish(topic, data)
      } catch (err) {
        // Nobody subscribed yet (a lone node): the message has no audience, which is not a fault.
        if ((err as Error).name === 'PublishError' || /NoPeersSubscribedToTopic/.test((err as Error).message)) return undefined
        throw err
      }
    },
    validate (topic, judge) {
      const validators = gossipsub.topicValidators
      if (validators === undefined) return () => {}
      validators.set(topic, (_peer, message) => judge(message.data))
      return () => { validators.delete(topic) }
    },
    subscribe (topic, handler) {
      const listener = (evt: CustomEvent<{ topic: string, data: Uint8Array }>): void => {
        if (evt.detail.topic === topic) handler(evt.detail.data)
      }
      gossipsub.addEventListener('message', listener)
      gossipsub.subscribe(topic)
      return () => {
        gossipsub.removeEventListener('message', listener)
        // A stopped gossipsub has no subscriptions left to drop.
        try {
          gossipsub.unsubscribe(topic)
        } catch {}
      }
    }
  }
}

/** Topics under the daemon's prefix (`mycelium/<networkId>`). */
export function consensusTopics (topicPrefix: string): { rounds: string, evidence: string, certified: string, epochs: string } {
  return {
    rounds: `${topicPrefix}/bft/rounds/1`,
    evidence: `${topicPrefix}/bft/evidence/1`,
    certified: `${topicPrefix}/bft/certified/1`,
    epochs: `${topicPrefix}/bft/epochs/1`
  }
}
