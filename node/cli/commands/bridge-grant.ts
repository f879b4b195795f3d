// Granting a bridge: the administrator of the network a bridge speaks into signs, with the
// root key, that the bridge's key there may carry another network's messages in
// (`network grant-bridge`); the bridge's operator hands the grant to the bridge
// (`bridge grant`). Without it receivers show what the bridge sends as its own messages, so
// the bridge carries nothing that way.
import { UsageError, parseDuration } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson } from '../context.ts'
import { HomeError } from '../../home/index.ts'
import { signBridgeGrant, bridgeGrantToken, isNetworkId, InvalidBridgeGrantError } from '../../../membership/index.ts'
import type { BridgeView } from '../../bridge/index.ts'

const DEFAULT_GRANT_TTL = '365d'

export const networkGrantBridge: Command = {
  name: 'network grant-bridge',
  usage: 'mycelium network grant-bridge <peerId> --from <network id> [--ttl 365d] [--json]',
  summary: 'let a member (a bridge\'s key in this network) carry messages of another network in; prints the grant for the bridge\'s operator',
  flags: { from: { type: 'string' }, ttl: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium network grant-bridge <peerId> --from <network id>')
    const origin = flags.from
    if (typeof origin !== 'string' || !isNetworkId(origin)) throw new UsageError('--from <network id> is required: the network whose messages the bridge may carry in (myc…)')
    const ttlMs = parseDuration((flags.ttl as string | undefined) ?? DEFAULT_GRANT_TTL)
    const network = ctx.home.loadNetwork()
    if (network === undefined) throw new HomeError(`${ctx.home.dir} is in no network yet`)
    const rootSecret = ctx.home.loadRootKey(network)
    if (rootSecret === undefined) throw new HomeError(`this node does not hold the root key of network ${network.name}; grant bridges on its administrator node`)
    let token: string
    let expiresAt: number
    try {
      const grant = signBridgeGrant(rootSecret, { bridge: positional[0], origin, issuedAt: Date.now(), ttlMs })
      token = bridgeGrantToken(grant)
      expiresAt = grant.expiresAt
    } catch (err) {
      throw new UsageError(err instanceof InvalidBridgeGrantError ? err.message : `"${positional[0]}" is not a peer id`)
    }
    if (ctx.json) { printJson(ctx, { grant: token, bridge: positional[0], networkId: network.networkId, origin, expiresAt }); return }
    ctx.out(token)
    ctx.err(`valid until ${new Date(expiresAt).toISOString().slice(0, 10)}; on the bridge node run: mycelium bridge grant <bridge id> <grant>`)
  }
}

export const bridgeGrant: Command = {
  name: 'bridge grant',
  usage: 'mycelium bridge grant <id> <grant> [--json]',
  summary: 'give a bridge the grant of a network\'s administrator (mycb1.…), so it carries messages into that network',
  async run (ctx, { positional }) {
    if (positional.length !== 2) throw new UsageError('usage: mycelium bridge grant <id> <grant>')
    const view = await api(ctx).request<BridgeView>('POST', '/bridges/grant', { id: positional[0], grant: positional[1] })
    if (ctx.json) { printJson(ctx, view); return }
    const until = (t: number | undefined): string => t === undefined ? 'not granted' : `granted until ${new Date(t).toISOString().slice(0, 10)}`
    ctx.out(`bridge ${view.id}: into ${view.networkName} ${until(view.granted.out)}; into this network ${until(view.granted.in)}`)
  }
}
