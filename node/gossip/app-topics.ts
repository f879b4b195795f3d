// Application gossip: operators and apps publish on named topics; the daemon maps a name to
// the network's own topic and keeps the last messages of each subscribed topic for the CLI.
import type { GossipSub } from '@libp2p/gossipsub'
import { topicPrefix, isNetworkId } from '../../membership/index.ts'
import type { NodeMetrics } from '../metrics/index.ts'
import { isBridgedMessage, decodeBridgedMessage, isAttested } from './bridged-message.ts'

const KEPT_PER_TOPIC = 200
const MAX_MESSAGE_BYTES = 64 * 1024

export interface ReceivedMessage {
  topic: string
  from: string
  text: string
  receivedAt: number
  /**
   * set when a bridge carried the message over from another network; `from` is then
   * "<origin network>/<origin peer>", never a bare peer id of this network
   */
  origin?: { networkId: string, peerId: string, bridge: string }
}

export class InvalidTopicError extends Error {
  readonly name = 'InvalidTopicError'
}

export function checkTopicName (name: unknown): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new InvalidTopicError('topic names are 1-64 letters, digits, dots, dashes or underscores')
  return name
}

export class AppTopics {
  private readonly pubsub: GossipSub
  private readonly prefix: string
  private readonly networkId: string
  private readonly metrics: NodeMetrics
  private readonly received = new Map<string, ReceivedMessage[]>()

  /** `isRevoked`: a revoked key's messages (relayed by others after the revocation) and a revoked bridge's wrappers are not shown. */
  constructor (pubsub: GossipSub, networkId: string, metrics: NodeMetrics, isRevoked: (peerId: string) => boolean = () => false) {
    this.pubsub = pubsub
    this.prefix = `${topicPrefix(networkId)}/app/`
    this.networkId = networkId
    this.metrics = metrics
    pubsub.addEventListener('message', (evt) => {
      const msg = evt.detail
      this.metrics.gossipIn.inc({ topic: msg.topic.startsWith(this.prefix) ? 'app' : topicLabel(msg.topic) })
      if (!msg.topic.startsWith(this.prefix)) return
      const name = msg.topic.slice(this.prefix.length)
      const list = this.received.get(name)
      if (list === undefined) return
      const from = msg.type === 'signed' ? msg.from.toString() : 'unsigned'
      if (isRevoked(from)) return
      if (isBridgedMessage(msg.data)) {
        const bridged = decodeBridgedMessage(msg.data)
        // A wrapper names the member that signed it, which must be the gossip sender (anyone
        // re-sending another bridge's wrapper is dropped). Whether the message is shown as
        // another network's is up to this network's administrator, not the sender: only a
        // sender holding a root-signed bridge grant for that origin network gets it
        // attributed as "<network>/<peer> via bridge <sender>". Without one the message is
        // the sender's own plain message: a member wrapping "the administrator said" gets
        // its own name on it, never the administrator's nor another network's.
        if (bridged === undefined || bridged.bridge !== from || bridged.topic !== name) return
        const text = new TextDecoder().decode(bridged.data)
        if (isNetworkId(bridged.originNetwork) && isAttested(bridged, { networkId: this.networkId, sender: from, now: Date.now() })) {
          list.push({ topic: name, from: `${bridged.originNetwork}/${bridged.originPeer}`, text, receivedAt: Date.now(), origin: { networkId: bridged.originNetwork, peerId: bridged.originPeer, bridge: bridged.bridge } })
        } else {
          list.push({ topic: name, from, text, receivedAt: Date.now() })
        }
      } else {
        list.push({ topic: name, from, text: new TextDecoder().decode(msg.data), receivedAt: Date.now() })
      }
      if (list.length > KEPT_PER_TOPIC) list.splice(0, list.length - KEPT_PER_TOPIC)
    })
  }

  subscribe (name: string): void {
    checkTopicName(name)
    if (!this.received.has(name)) this.received.set(name, [])
    this.pubsub.subscribe(this.prefix + name)
  }

  async publish (name: string, text: string): Promise<number> {
    checkTopicName(name)
    const data = new TextEncoder().encode(text)
    if (data.length > MAX_MESSAGE_BYTES) throw new InvalidTopicError(`message is larger than ${MAX_MESSAGE_BYTES} bytes`)
    const result = await this.pubsub.publish(this.prefix + name, data)
    this.metrics.gossipOut.inc({ topic: 'app' })
    return result.recipients.length
  }

  messages (name?: string): ReceivedMessage[] {
    if (name !== undefined) return [...(this.received.get(checkTopicName(name)) ?? [])]
    return [...this.received.values()].flat().sort((a, b) => a.receivedAt - b.receivedAt)
  }

  topics (): string[] {
    return [...this.received.keys()]
  }
}

/** The metric's label of a network topic: its first part after the network id, and for the BFT its kind (rounds, epochs …), whose rates differ by orders of magnitude. */
function topicLabel (topic: string): string {
  const [first, second] = topic.split('/').slice(2)
  if (first === undefined || first === '') return 'other'
  return first === 'bft' && second !== undefined ? `bft/${second}` : first
}
