// The transport the engine needs: publish bytes on a topic, and subscribe with a handler.
// gossipsubTransport adapts a js-libp2p gossipsub service to it.
export interface ConsensusPubSub {
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  /** Calls `handler` for every message on `topic` from another node; returns the unsubscribe. */
  subscribe: (topic: string, handler: (data: Uint8Array) => void) => () => void
}

/** The part of a gossipsub service used here (@libp2p/gossipsub satisfies it). */
export interface GossipsubLike {
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
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
