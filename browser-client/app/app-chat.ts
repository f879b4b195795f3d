// The live message box: one application gossip topic, named the way the daemon names them
// (`mycelium/<networkId>/app/<name>`), so `mycelium gossip pub/messages` talk with pages.
import type { GossipSub } from '@libp2p/gossipsub'
import { topicPrefix } from '../../membership/index.ts'

/** the topic pages talk on; sclerotia serving pages subscribe to it so they carry it */
export const PAGE_CHAT_TOPIC = 'chat'
const KEPT = 200
const MAX_MESSAGE_BYTES = 64 * 1024

export interface ChatMessage {
  from: string
  text: string
  at: number
  mine: boolean
}

export class InvalidTopicNameError extends Error {
  readonly name = 'InvalidTopicNameError'
}

export function checkTopicName (name: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new InvalidTopicNameError('topic names are 1-64 letters, digits, dots, dashes or underscores')
  return name
}

export class AppChat {
  readonly name: string
  readonly topic: string
  readonly messages: ChatMessage[] = []
  private readonly pubsub: GossipSub
  private readonly self: string
  private readonly onChange: () => void
  private readonly onMessage = (evt: CustomEvent<any>): void => {
    const msg = evt.detail
    if (msg.topic !== this.topic) return
    this.push({ from: msg.type === 'signed' ? msg.from.toString() : 'unsigned', text: new TextDecoder().decode(msg.data).slice(0, 4000), at: Date.now(), mine: false })
  }

  constructor (options: { pubsub: GossipSub, networkId: string, name: string, self: string, onChange: () => void }) {
    this.pubsub = options.pubsub
    this.name = checkTopicName(options.name)
    this.topic = `${topicPrefix(options.networkId)}/app/${this.name}`
    this.self = options.self
    this.onChange = options.onChange
  }

  start (): void {
    this.pubsub.addEventListener('message', this.onMessage)
    this.pubsub.subscribe(this.topic)
  }

  stop (): void {
    this.pubsub.removeEventListener('message', this.onMessage)
    this.pubsub.unsubscribe(this.topic)
  }

  /** Members subscribed to the topic that this page knows of (its message reaches them). */
  subscribers (): number {
    return this.pubsub.getSubscribers(this.topic).length
  }

  /** Publishes a message; returns how many peers it was sent to. */
  async send (text: string): Promise<number> {
    const data = new TextEncoder().encode(text)
    if (data.length === 0 || data.length > MAX_MESSAGE_BYTES) throw new InvalidTopicNameError(`messages are 1 to ${MAX_MESSAGE_BYTES} bytes`)
    const result = await this.pubsub.publish(this.topic, data)
    this.push({ from: this.self, text, at: Date.now(), mine: true })
    return result.recipients.length
  }

  private push (message: ChatMessage): void {
    this.messages.push(message)
    if (this.messages.length > KEPT) this.messages.splice(0, this.messages.length - KEPT)
    this.onChange()
  }
}
