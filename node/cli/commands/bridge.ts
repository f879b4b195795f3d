import { UsageError } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson } from '../context.ts'
import { parseRate, InvalidRateError, type BridgeView, type DirectionStats } from '../../bridge/index.ts'

function stats (d: DirectionStats): string {
  return `${d.forwarded} messages, ${d.services} service records, ${d.dropped} dropped, ${d.unattested} not granted, ${d.refused} records refused`
}

function describe (b: BridgeView): string {
  return `${b.id}  ↔ ${b.networkName} (${b.networkId})  topics ${b.topics.join(',')}  rate ${b.ratePerS}/s  ${b.running ? `${b.peers} peer${b.peers === 1 ? '' : 's'}` : 'not running'}\n          out ${stats(b.out)}${b.granted.out === undefined ? ' (not granted by the other network\'s administrator)' : ''}; in ${stats(b.in)}${b.granted.in === undefined ? ' (not granted by this network\'s administrator)' : ''}`
}

export const bridgeAdd: Command = {
  name: 'bridge add',
  usage: 'mycelium bridge add --to <invite-of-other-network> --topics a,b [--rate 100/s] [--json]',
  summary: 'join another network with a second key and forward the listed app topics both ways',
  flags: { to: { type: 'string' }, topics: { type: 'list' }, rate: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError('bridge add takes no arguments, only options')
    if (typeof flags.to !== 'string') throw new UsageError('--to <invite> is required (an invite of the other network)')
    const topics = flags.topics as string[] | undefined
    if (topics === undefined || topics.length === 0) throw new UsageError('--topics a,b is required: nothing crosses a bridge unless listed')
    let ratePerS: number | undefined
    try {
      ratePerS = flags.rate === undefined ? undefined : parseRate(flags.rate as string)
    } catch (err) {
      if (err instanceof InvalidRateError) throw new UsageError(err.message)
      throw err
    }
    const view = await api(ctx).request<BridgeView>('POST', '/bridges', { invite: flags.to, topics, ratePerS })
    if (ctx.json) printJson(ctx, view)
    else {
      ctx.out(`bridge ${view.id} to ${view.networkName} (${view.networkId}) forwards ${view.topics.join(', ')} at up to ${view.ratePerS}/s each way\nits key in that network: ${view.peerId}`)
      // each direction waits for the administrator of the network it enters
      ctx.err(`nothing crosses until each network's administrator grants the bridge:\n  in ${view.networkName}: mycelium network grant-bridge ${view.peerId} --from <this network's id>\n  in this network: mycelium network grant-bridge <this node's peer id> --from ${view.networkId}\nthen here: mycelium bridge grant ${view.id} <grant>`)
    }
  }
}

export const bridgeList: Command = {
  name: 'bridge ls',
  usage: 'mycelium bridge ls [--json]',
  summary: 'bridges of this node: other network, topics, rate, forwarded and dropped counts',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('bridge ls takes no arguments')
    const list = await api(ctx).request<BridgeView[]>('GET', '/bridges')
    if (ctx.json) { printJson(ctx, list); return }
    if (list.length === 0) ctx.out('no bridges')
    for (const b of list) ctx.out(describe(b))
  }
}

export const bridgeRemove: Command = {
  name: 'bridge rm',
  usage: 'mycelium bridge rm <id>',
  summary: 'stop a bridge at once and leave the other network (its key there is deleted)',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium bridge rm <id>')
    const r = await api(ctx).request<{ removed: string }>('POST', '/bridges/remove', { id: positional[0] })
    if (ctx.json) printJson(ctx, r)
    else ctx.out(`bridge ${r.removed} removed`)
  }
}

export const dhtFindPeer: Command = {
  name: 'dht find-peer',
  usage: 'mycelium dht find-peer <peerId> [--json]',
  summary: 'look a peer up in this network\'s DHT (members only: other networks are never found)',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium dht find-peer <peerId>')
    const r = await api(ctx).request<{ peerId: string, found: boolean, addrs?: string[], error?: string }>('GET', `/dht/find-peer?peerId=${encodeURIComponent(positional[0])}`)
    if (ctx.json) { printJson(ctx, r); return }
    if (r.found) ctx.out(`${r.peerId}\n  ${(r.addrs ?? []).join('\n  ')}`)
    else throw new Error(`${r.peerId} was not found in this network's DHT${r.error !== undefined ? ` (${r.error})` : ''}`)
  }
}
