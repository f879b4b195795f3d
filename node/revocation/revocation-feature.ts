// The daemon's side of revocation: the network's revocation list answers the membership
// policy and the connection gater ("is this peer revoked?"), the exchange spreads new
// revocations, and the admin API lets the administrator node sign one.
import { peerIdFromString, peerIdFromPublicKey } from '@libp2p/peer-id'
import { ApiError } from '../api/index.ts'
import { HomeError, MemberBook, type Home, type NetworkInfo } from '../home/index.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import { RevocationList, RevocationListFullError } from './revocation-list.ts'
import { RevocationExchange } from './revocation-exchange.ts'
import { signRevocation, type Revocation } from '../../membership/index.ts'
import { revocationUntil } from './revocation-until.ts'

export class RevocationRefusedError extends Error {
  readonly name = 'RevocationRefusedError'
}

export function revocationJson (r: Revocation): { peerId: string, revokedAt: number, until?: number } {
  return r.until === undefined ? { peerId: r.peerId, revokedAt: r.revokedAt } : { peerId: r.peerId, revokedAt: r.revokedAt, until: r.until }
}

/** Signs a revocation with the root key held in `home`; the administrator cannot revoke its own node. */
export function signRevocationWithHome (home: Home, network: NetworkInfo, peerId: string, now = Date.now()): Revocation {
  const rootSecret = home.loadRootKey(network)
  if (rootSecret === undefined) throw new RevocationRefusedError(`this node does not hold the root key of network ${network.name}; revoke members on its administrator node`)
  try { peerIdFromString(peerId) } catch { throw new RevocationRefusedError(`"${peerId}" is not a peer id`) }
  if (home.hasNodeKey() && peerIdFromPublicKey(home.loadNodeKey().publicKey).toString() === peerId) throw new RevocationRefusedError('this is the administrator node itself; it cannot revoke its own key')
  return signRevocation(rootSecret, network.networkId, peerId, now, revocationUntil(new MemberBook(home).list(), peerId, now))
}

/** Revokes without a running daemon: stored in the home, spread when the daemon next runs. */
export function revokeOffline (home: Home, peerId: string): Revocation {
  const network = home.loadNetwork()
  if (network === undefined) throw new HomeError(`${home.dir} is in no network`)
  const list = new RevocationList(home, network)
  if (list.has(peerId)) throw new RevocationRefusedError(`${peerId} is already revoked`)
  const revocation = signRevocationWithHome(home, network, peerId)
  list.add(revocation)
  return revocation
}

export function revocationFeature (): DaemonFeature & { list: () => RevocationList | undefined } {
  let list: RevocationList | undefined
  let exchange: RevocationExchange | undefined
  return {
    name: 'revocation',
    list: () => list,
    services: (ctx: DaemonContext) => {
      // loaded before the host exists: the first handshakes already consult it
      list = new RevocationList(ctx.home, ctx.network)
      return {}
    },
    isRevoked: (peerId: string) => list?.has(peerId) === true,
    async start (ctx: DaemonContext) {
      list ??= new RevocationList(ctx.home, ctx.network)
      exchange = new RevocationExchange({ host: ctx.host(), networkId: ctx.network.networkId, rootPublicKey: ctx.network.rootPublicKey, list, log: ctx.log })
      await exchange.start()
    },
    async stop () {
      await exchange?.stop()
    },
    routes: (ctx: DaemonContext) => ({
      'GET /network/revocations': () => (list?.list() ?? []).map(revocationJson),
      'POST /network/revocations': async ({ body }) => {
        const peerId = (body as Record<string, unknown> | undefined)?.peerId
        if (typeof peerId !== 'string') throw new ApiError(400, 'peerId must be a string')
        if (list?.has(peerId) === true) throw new ApiError(409, `${peerId} is already revoked`)
        let revocation: Revocation
        try {
          revocation = signRevocationWithHome(ctx.home, ctx.network, peerId)
          list!.add(revocation)
        } catch (err) {
          if (err instanceof RevocationListFullError) throw new ApiError(507, err.message)
          throw new ApiError(err instanceof RevocationRefusedError ? 400 : 500, (err as Error).message)
        }
        await exchange!.announce(revocation)
        return revocationJson(revocation)
      }
    }),
    status: () => ({ revoked: list?.list().length ?? 0 })
  }
}
