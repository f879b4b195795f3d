// `mycelium spores …`: the node's directory of signed entries (list, counts and rejections),
// seed files in and out, and this node's service records.
import { resolve } from 'node:path'
import { UsageError } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson, type CommandContext } from '../context.ts'
import { ENTRY_TYPES, TIERS, isEntryType, type EntryView, type SporeStats, type SeedImportReport } from '../../../spores/index.ts'

type Stats = SporeStats & { quarantined: number, members: number }

function short (id: string): string {
  return id.length > 16 ? `…${id.slice(-8)}` : id
}

function oneLine (value: unknown): string {
  const text = JSON.stringify(value)
  return text.length > 100 ? `${text.slice(0, 99)}…` : text
}

export const sporesLs: Command = {
  name: 'spores ls',
  usage: 'mycelium spores ls [--tier primary|seed|latent] [--type T] [--json]',
  summary: 'entries in the node\'s spores (default tier latent)',
  flags: { tier: { type: 'string' }, type: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError('usage: mycelium spores ls [--tier primary|seed|latent] [--type T] [--json]')
    const tier = flags.tier as string | undefined
    const type = flags.type as string | undefined
    if (tier !== undefined && !(TIERS as readonly string[]).includes(tier)) throw new UsageError(`unknown tier "${tier}": use one of ${TIERS.join(', ')}`)
    if (type !== undefined && !isEntryType(type)) throw new UsageError(`unknown entry type "${type}": use one of ${ENTRY_TYPES.join(', ')}`)
    const q = new URLSearchParams()
    if (tier !== undefined) q.set('tier', tier)
    if (type !== undefined) q.set('type', type)
    const list = await api(ctx).request<EntryView[]>('GET', `/spores${q.size > 0 ? `?${q.toString()}` : ''}`)
    if (ctx.json) {
      printJson(ctx, list.map(e => ({ type: e.type, key: e.key, origin: e.origin, seq: e.seq, issuedAt: e.issuedAt, ...(e.expiresAt === undefined ? {} : { expiresAt: e.expiresAt }), value: e.value })))
      return
    }
    if (list.length === 0) { ctx.out(`no entries in the ${tier ?? 'latent'} tier${type === undefined ? '' : ` of type ${type}`}`); return }
    for (const e of list) ctx.out(`${e.type.padEnd(10)} ${e.key.split('/').map(short).join('/').padEnd(22)} by ${short(e.origin)} seq ${e.seq} ${new Date(e.issuedAt).toISOString()} ${oneLine(e.value)}`)
  }
}

function printStats (ctx: CommandContext, s: Stats): void {
  const lines = ['tier     type        count / limit   rejections']
  for (const tier of TIERS) {
    for (const type of ENTRY_TYPES) {
      const row = s.tiers[tier][type]
      const rejections = Object.entries(row.rejections).map(([r, n]) => `${r} ${n}`).join(', ')
      if (row.count === 0 && rejections === '') continue
      lines.push(`${tier.padEnd(8)} ${type.padEnd(11)} ${`${row.count} / ${row.limit}`.padEnd(15)} ${rejections}`)
    }
    const broken = Object.entries(s.undecodable[tier]).map(([r, n]) => `${r} ${n}`).join(', ')
    if (broken !== '') lines.push(`${tier.padEnd(8)} ${'(no type)'.padEnd(11)} ${''.padEnd(15)} ${broken}`)
  }
  lines.push(`primary epoch  ${s.primaryEpoch ?? 'none'}`)
  if (s.gossip !== undefined) lines.push(`gossip         published ${s.gossip.published}, received ${s.gossip.received}, accepted ${s.gossip.accepted}, ignored ${s.gossip.ignored}, rejected ${s.gossip.rejected}`)
  if (s.sync !== undefined) lines.push(`sync           ${s.sync.sessions} sessions, ${s.sync.served} served, ${s.sync.bytesSent} bytes sent, ${s.sync.bytesReceived} received, ${s.sync.pulled} entries pulled, ${s.sync.pushed} pushed`)
  lines.push(`seed           ${s.quarantined} node(s) in quarantine; ${s.members} known members`)
  ctx.out(lines.join('\n'))
}

export const sporesStats: Command = {
  name: 'spores stats',
  usage: 'mycelium spores stats [--json]',
  summary: 'per tier and type: entry counts, limits and rejections by reason; gossip and sync traffic',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('spores stats takes no arguments')
    const stats = await api(ctx).request<Stats>('GET', '/spores/stats')
    if (ctx.json) printJson(ctx, stats)
    else printStats(ctx, stats)
  }
}

export const sporesExportSeed: Command = {
  name: 'spores export-seed',
  usage: 'mycelium spores export-seed FILE [--all-nodes]',
  summary: 'write a signed seed file: bootstrap nodes (this node and the sclerotia; --all-nodes: every known node), their keys and addresses, the latest primary digest',
  flags: { 'all-nodes': { type: 'boolean' } },
  async run (ctx, { positional, flags }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium spores export-seed FILE [--all-nodes]')
    const r = await api(ctx).request<{ file: string, nodes: number, entries: number }>('POST', '/spores/seed/export', { file: resolve(positional[0]), allNodes: flags['all-nodes'] === true })
    if (ctx.json) printJson(ctx, r)
    else ctx.out(`wrote ${r.file}: ${r.nodes} node(s), ${r.entries} entr${r.entries === 1 ? 'y' : 'ies'}`)
  }
}

export const sporesImportSeed: Command = {
  name: 'spores import-seed',
  usage: 'mycelium spores import-seed FILE',
  summary: 'read a seed file: entries of nodes this node can reach and confirm are merged, the others quarantined',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium spores import-seed FILE')
    const r = await api(ctx).request<SeedImportReport>('POST', '/spores/seed/import', { file: resolve(positional[0]) })
    if (ctx.json) { printJson(ctx, r); return }
    const lines = [`seed from ${r.exporter} exported ${new Date(r.exportedAt).toISOString()}${r.primary === null ? '' : `, primary epoch ${r.primary.epoch}`}`]
    lines.push(`merged ${r.merged} entr${r.merged === 1 ? 'y' : 'ies'} of ${r.confirmed.length} confirmed node(s)`)
    for (const id of r.confirmed) lines.push(`  confirmed    ${id}`)
    for (const q of r.quarantined) lines.push(`  quarantined  ${q.peerId} (${q.entries} entr${q.entries === 1 ? 'y' : 'ies'}; not reachable or not that identity at ${q.addrs.join(' ') || 'no address'})`)
    const rejected = Object.entries(r.rejected).map(([k, n]) => `${k} ${n}`).join(', ')
    if (rejected !== '') lines.push(`rejected: ${rejected}`)
    ctx.out(lines.join('\n'))
  }
}

export const sporesPublishService: Command = {
  name: 'spores publish-service',
  usage: 'mycelium spores publish-service <name> <endpoint>... [--protocol P]',
  summary: 'publish (or update) this node\'s record of a named service and its endpoints',
  flags: { protocol: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length < 2) throw new UsageError('usage: mycelium spores publish-service <name> <endpoint>... [--protocol P]')
    const [name, ...endpoints] = positional
    const protocol = flags.protocol as string | undefined
    const r = await api(ctx).request<EntryView>('POST', '/spores/services', { name, endpoints, ...(protocol === undefined ? {} : { protocol }) })
    if (ctx.json) printJson(ctx, r)
    else ctx.out(`published service ${name} (seq ${r.seq}): ${endpoints.join(' ')}`)
  }
}

export const sporesQuarantine: Command = {
  name: 'spores quarantine',
  usage: 'mycelium spores quarantine [--retry] [--json]',
  summary: 'nodes from imported seed files not confirmed yet; --retry dials them again and merges those confirmed now',
  flags: { retry: { type: 'boolean' } },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError('usage: mycelium spores quarantine [--retry] [--json]')
    if (flags.retry === true) {
      const r = await api(ctx).request<{ confirmed: string[], merged: number }>('POST', '/spores/seed/retry')
      if (ctx.json) { printJson(ctx, r); return }
      ctx.out(`confirmed ${r.confirmed.length} node(s), merged ${r.merged} entr${r.merged === 1 ? 'y' : 'ies'}`)
      for (const id of r.confirmed) ctx.out(`  confirmed    ${id}`)
      return
    }
    const list = await api(ctx).request<Array<{ peerId: string, addrs: string[], entries: number, seedFrom: string, importedAt: number }>>('GET', '/spores/seed/quarantine')
    if (ctx.json) { printJson(ctx, list); return }
    if (list.length === 0) { ctx.out('no node in quarantine'); return }
    for (const q of list) ctx.out(`${q.peerId}  ${q.entries} entr${q.entries === 1 ? 'y' : 'ies'}, from the seed of ${short(q.seedFrom)} imported ${new Date(q.importedAt).toISOString()}; ${q.addrs.join(' ') || 'no address'}`)
  }
}
