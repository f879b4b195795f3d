import { UsageError } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson } from '../context.ts'

export const gossipSubscribe: Command = {
  name: 'gossip sub',
  usage: 'mycelium gossip sub <topic>',
  summary: 'subscribe the daemon to an application topic (messages are kept for gossip messages)',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium gossip sub <topic>')
    const r = await api(ctx).request<{ topics: string[] }>('POST', '/gossip/subscribe', { topic: positional[0] })
    if (ctx.json) printJson(ctx, r)
    else ctx.out(`subscribed; topics: ${r.topics.join(', ')}`)
  }
}

export const gossipPublish: Command = {
  name: 'gossip pub',
  usage: 'mycelium gossip pub <topic> <message>',
  summary: 'publish a text message on an application topic',
  async run (ctx, { positional }) {
    if (positional.length !== 2) throw new UsageError('usage: mycelium gossip pub <topic> <message>')
    const r = await api(ctx).request<{ recipients: number }>('POST', '/gossip/publish', { topic: positional[0], message: positional[1] })
    if (ctx.json) printJson(ctx, r)
    else ctx.out(`published to ${r.recipients} peer${r.recipients === 1 ? '' : 's'}`)
  }
}

export const gossipMessages: Command = {
  name: 'gossip messages',
  usage: 'mycelium gossip messages [topic] [--json]',
  summary: 'messages received on subscribed topics',
  async run (ctx, { positional }) {
    if (positional.length > 1) throw new UsageError('usage: mycelium gossip messages [topic]')
    const q = positional[0] === undefined ? '' : `?topic=${encodeURIComponent(positional[0])}`
    const list = await api(ctx).request<Array<{ topic: string, from: string, text: string, receivedAt: number, origin?: { networkId: string, peerId: string, bridge: string } }>>('GET', `/gossip/messages${q}`)
    if (ctx.json) { printJson(ctx, list); return }
    // a bridged message names its origin only with its network, and the bridge that vouches for it
    for (const m of list) ctx.out(`${new Date(m.receivedAt).toISOString()} [${m.topic}] ${m.origin !== undefined ? `from ${m.origin.networkId.slice(0, 12)}…/${m.origin.peerId.slice(-8)} via bridge ${m.origin.bridge.slice(-8)} of network ${m.origin.networkId}` : m.from.slice(-8)}: ${m.text}`)
  }
}
