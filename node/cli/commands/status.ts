import { UsageError } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson, type CommandContext } from '../context.ts'
import type { PeerView } from '../../daemon/daemon.ts'

/** Nothing for a peer in good standing; its score once it lost some, and why that matters. */
function gossipNote (p: PeerView): string {
  if (p.gossipIgnored === true) return `[gossip ignored, score ${p.gossipScore}] `
  return typeof p.gossipScore === 'number' && p.gossipScore < 0 ? `[gossip score ${p.gossipScore}] ` : ''
}

function printPeers (ctx: CommandContext, peers: PeerView[]): void {
  if (peers.length === 0) { ctx.out('no peers connected'); return }
  for (const p of peers) ctx.out(`${p.peerId}  ${p.role.padEnd(11)} ${gossipNote(p)}${p.addrs[0] ?? ''}`)
}

export const status: Command = {
  name: 'status',
  usage: 'mycelium status [--json]',
  summary: 'this node: peer id, network, role, addresses, peers, uptime',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('status takes no arguments')
    const s = await api(ctx).request<Record<string, any>>('GET', '/status')
    if (ctx.json) { printJson(ctx, s); return }
    ctx.out(`peer     ${s.peerId}\nnetwork  ${s.networkName} (${s.networkId})\nrole     ${s.role}\nuptime   ${s.uptimeS} s\naddrs    ${(s.addrs as string[]).join('\n         ')}${typeof s.httpUrl === 'string' ? `\nweb      ${s.httpUrl as string}` : ''}\npeers    ${(s.peers as unknown[]).length}`)
    printPeers(ctx, s.peers)
    for (const r of (s.browserJoinRequests ?? []) as Array<{ peerId: string, code: string, from?: string }>) ctx.out(`browser ${r.code} asks to join from ${r.from ?? 'an unknown address'} (${r.peerId}): if the tab shows this code, approve with mycelium network approve ${r.code}`)
  }
}

export const peers: Command = {
  name: 'peers',
  usage: 'mycelium peers [--json]',
  summary: 'connected members with their roles and addresses',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('peers takes no arguments')
    const list = await api(ctx).request<PeerView[]>('GET', '/peers')
    if (ctx.json) printJson(ctx, list)
    else printPeers(ctx, list)
  }
}

export const stop: Command = {
  name: 'stop',
  usage: 'mycelium stop',
  summary: 'stop the running daemon gracefully',
  async run (ctx) {
    const info = ctx.home.loadDaemonInfo()
    await api(ctx).request('POST', '/stop')
    const { processAlive } = await import('../../api/index.ts')
    const deadline = Date.now() + 15_000
    while (info !== undefined && processAlive(info.pid) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
    if (info !== undefined && processAlive(info.pid)) throw new Error(`daemon (pid ${info.pid}) did not stop within 15 s`)
    ctx.err('daemon stopped')
  }
}

export const metrics: Command = {
  name: 'metrics',
  usage: 'mycelium metrics',
  summary: 'the node\'s Prometheus metrics (as served at GET /metrics)',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('metrics takes no arguments')
    ctx.out(await api(ctx).request<string>('GET', '/metrics'))
  }
}
