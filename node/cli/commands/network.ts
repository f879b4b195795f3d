import { UsageError, parseDuration, parsePositiveInt } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson } from '../context.ts'
import { createNetwork, createInvite } from '../../network/index.ts'
import { HomeError } from '../../home/index.ts'
import { DaemonNotRunningError } from '../../api/index.ts'
import { toBase64Url } from '../../../crypto/index.ts'

export const networkCreate: Command = {
  name: 'network create',
  usage: 'mycelium network create <name> [--json]',
  summary: 'create a network: a new root key; this node becomes its first member and administrator',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium network create <name>')
    const info = await createNetwork(ctx.home, positional[0])
    const out = { networkId: info.networkId, name: info.name, rootPublicKey: toBase64Url(info.rootPublicKey) }
    if (ctx.json) printJson(ctx, out)
    else ctx.out(`created network ${info.name} (${info.networkId})\nroot key: ${ctx.home.path('network-root.key')} — keep it safe, it administers the network`)
  }
}

export const networkShow: Command = {
  name: 'network show',
  usage: 'mycelium network show [--json]',
  summary: 'network id, name, root public key (and members when the daemon runs)',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('network show takes no arguments')
    const info = ctx.home.loadNetwork()
    if (info === undefined) throw new HomeError(`${ctx.home.dir} is in no network yet: run mycelium network create <name>, mycelium join <invite> or mycelium start`)
    const out: Record<string, unknown> = { networkId: info.networkId, name: info.name, rootPublicKey: toBase64Url(info.rootPublicKey) }
    try {
      out.members = (await api(ctx).request<{ members: string[] }>('GET', '/network')).members
    } catch (err) {
      if (!(err instanceof DaemonNotRunningError)) throw err
    }
    if (ctx.json) { printJson(ctx, out); return }
    ctx.out(`network  ${info.name}\nid       ${info.networkId}\nroot key ${out.rootPublicKey as string}${out.members !== undefined ? `\nmembers  ${(out.members as string[]).join('\n         ')}` : ''}`)
  }
}

export const networkInvite: Command = {
  name: 'network invite',
  usage: 'mycelium network invite [--ttl 1h] [--uses 1] [--bootstrap MULTIADDR]... | --browser [--cert-ttl 12h] [--ttl 1h] [--uses 1]',
  summary: 'print a single-use, expiring invite token for another machine, or with --browser a link that makes a browser tab a member (alone on stdout)',
  flags: { ttl: { type: 'string' }, uses: { type: 'string' }, bootstrap: { type: 'list' }, browser: { type: 'boolean' }, 'cert-ttl': { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError('network invite takes no arguments')
    const ttlMs = parseDuration((flags.ttl as string | undefined) ?? '1h')
    const uses = flags.uses === undefined ? 1 : parsePositiveInt(flags.uses as string, 'uses')
    const bootstrap = flags.bootstrap as string[] | undefined
    if (flags.browser === true) {
      if (bootstrap !== undefined) throw new UsageError('--browser invites point at this node\'s own web client: --bootstrap does not apply')
      const certificateTtlMs = parseDuration((flags['cert-ttl'] as string | undefined) ?? '12h')
      const link = await api(ctx).request<{ url: string, expiresAt: number }>('POST', '/browser/invites', { ttlMs, uses, certificateTtlMs })
      if (ctx.json) { printJson(ctx, link); return }
      ctx.out(link.url)
      ctx.err(`open this link in a browser within ${Math.round(ttlMs / 60_000)} min (${uses} use${uses > 1 ? 's' : ''}); the tab becomes a member for ${Math.round(certificateTtlMs / 3_600_000 * 10) / 10} h`)
      return
    }
    if (flags['cert-ttl'] !== undefined) throw new UsageError('--cert-ttl applies to --browser invites only')
    let invite: string
    if (bootstrap !== undefined) {
      invite = createInvite(ctx.home, { ttlMs, uses, bootstrap })
    } else {
      invite = (await api(ctx).request<{ invite: string }>('POST', '/invites', { ttlMs, uses })).invite
    }
    ctx.out(invite)
    ctx.err(`invite valid for ${Math.round(ttlMs / 60_000)} min, ${uses} use${uses > 1 ? 's' : ''}; on the other machine run: mycelium join <invite>`)
  }
}

export const join: Command = {
  name: 'join',
  usage: 'mycelium join <invite>',
  summary: 'join a network with an invite; then run mycelium start',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium join <invite>')
    const { joinNetwork } = await import('../../network/index.ts')
    const result = await joinNetwork(ctx.home, positional[0])
    if (ctx.json) printJson(ctx, { networkId: result.network.networkId, name: result.network.name, peerId: result.peerId })
    else ctx.out(`joined network ${result.network.name} (${result.network.networkId}) as ${result.peerId}\nstart the node with: mycelium start${ctx.home.dir !== undefined ? ` --home ${ctx.home.dir}` : ''}`)
  }
}

export const networkRejected: Command = {
  name: 'network rejected',
  usage: 'mycelium network rejected [--json]',
  summary: 'recent connections refused by the membership handshake, with the reason',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('network rejected takes no arguments')
    const list = await api(ctx).request<Array<{ peerId: string, reason: string, at: number }>>('GET', '/rejected')
    if (ctx.json) { printJson(ctx, list); return }
    if (list.length === 0) ctx.out('no connection was refused')
    for (const r of list) ctx.out(`${new Date(r.at).toISOString()} ${r.peerId}: ${r.reason}`)
  }
}
