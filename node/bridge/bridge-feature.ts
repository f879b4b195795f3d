// The daemon's bridges: started with the daemon from bridges.json, added and removed through
// the admin API (`mycelium bridge add|ls|rm`).
import { randomBytes } from 'node:crypto'
import { ApiError } from '../api/index.ts'
import { decodeInvite, decodeBridgeGrantToken, MembershipError, InvalidBridgeGrantError } from '../../membership/index.ts'
import { joinNetwork } from '../network/index.ts'
import { checkTopicName, InvalidTopicError } from '../gossip/index.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import { Bridge, type BridgeView } from './bridge.ts'
import { BridgeGrantMismatchError } from './bridge-grants.ts'
import { BridgeBook, type BridgeRecord } from './bridge-book.ts'

export const DEFAULT_BRIDGE_RATE_PER_S = 100
const MAX_TOPICS = 32

function body (b: unknown): Record<string, unknown> {
  return b !== null && typeof b === 'object' ? b as Record<string, unknown> : {}
}

export function bridgeFeature (): DaemonFeature {
  const bridges = new Map<string, Bridge>()

  const launch = (ctx: DaemonContext, book: BridgeBook, record: BridgeRecord): Bridge => {
    const bridge = new Bridge({ record, home: book.bridgeHome(record.id), local: { networkId: ctx.network.networkId, host: ctx.host, secretKey: ctx.secretKey, isMember: ctx.isVerified }, log: ctx.log })
    bridges.set(record.id, bridge)
    for (const token of record.grants ?? []) {
      try {
        bridge.grants.hold(decodeBridgeGrantToken(token))
      } catch (err) {
        // an expired grant, or bridges.json edited by hand: that direction waits for a new grant
        ctx.log.warn({ bridge: record.id, err: (err as Error).message }, 'bridge grant not used')
      }
    }
    return bridge
  }

  return {
    name: 'bridge',
    async start (ctx) {
      const book = new BridgeBook(ctx.home)
      for (const record of book.list()) {
        // a bridge whose other network is unreachable must not hold up this node's start
        void launch(ctx, book, record).start().catch((err: Error) => { ctx.log.error({ bridge: record.id, err: err.message }, 'bridge did not start') })
      }
    },
    async stop () {
      await Promise.all([...bridges.values()].map(async b => { await b.stop() }))
      bridges.clear()
    },
    routes: (ctx) => ({
      'GET /bridges': (): BridgeView[] => [...bridges.values()].map(b => b.view()),
      'POST /bridges': async ({ body: b }) => {
        const { invite, topics, ratePerS } = body(b)
        if (typeof invite !== 'string') throw new ApiError(400, 'invite must be a string')
        if (!Array.isArray(topics) || topics.length === 0 || topics.length > MAX_TOPICS) throw new ApiError(400, `topics must list 1-${MAX_TOPICS} topic names`)
        const rate = ratePerS === undefined ? DEFAULT_BRIDGE_RATE_PER_S : ratePerS
        if (typeof rate !== 'number' || !(rate > 0) || rate > 100_000) throw new ApiError(400, 'ratePerS must be a number above 0 and at most 100000')
        let names: string[]
        let decoded
        try {
          names = [...new Set(topics.map(checkTopicName))]
          decoded = decodeInvite(invite)
        } catch (err) {
          if (err instanceof InvalidTopicError || err instanceof MembershipError) throw new ApiError(400, err.message)
          throw err
        }
        if (decoded.networkId === ctx.network.networkId) throw new ApiError(400, 'the invite is for this node\'s own network; a bridge joins another network')
        if ([...bridges.values()].some(x => x.record.networkId === decoded.networkId)) throw new ApiError(409, `this node already bridges to network ${decoded.networkName} (${decoded.networkId})`)
        const book = new BridgeBook(ctx.home)
        const id = randomBytes(4).toString('hex')
        const home = book.bridgeHome(id)
        try {
          await joinNetwork(home, invite, { signal: AbortSignal.timeout(20_000) })
        } catch (err) {
          book.remove(id)
          throw new ApiError(400, `could not join network ${decoded.networkName}: ${(err as Error).message}`)
        }
        const record: BridgeRecord = { id, networkId: decoded.networkId, networkName: decoded.networkName, topics: names, ratePerS: rate, createdAt: Date.now() }
        book.add(record)
        const bridge = launch(ctx, book, record)
        try {
          await bridge.start()
        } catch (err) {
          bridges.delete(id)
          await bridge.stop()
          book.remove(id)
          throw new ApiError(500, `bridge did not start: ${(err as Error).message}`)
        }
        return bridge.view()
      },
      'POST /bridges/grant': ({ body: b }) => {
        const { id, grant } = body(b)
        if (typeof id !== 'string') throw new ApiError(400, 'id must be a string')
        if (typeof grant !== 'string') throw new ApiError(400, 'grant must be a string (mycb1.…)')
        const bridge = bridges.get(id)
        if (bridge === undefined) throw new ApiError(404, `no bridge ${id} (see mycelium bridge ls)`)
        try {
          bridge.grants.hold(decodeBridgeGrantToken(grant))
        } catch (err) {
          if (err instanceof InvalidBridgeGrantError || err instanceof BridgeGrantMismatchError) throw new ApiError(400, err.message)
          throw err
        }
        new BridgeBook(ctx.home).add({ ...bridge.record, grants: bridge.grants.tokens() })
        return bridge.view()
      },
      'POST /bridges/remove': async ({ body: b }) => {
        const { id } = body(b)
        if (typeof id !== 'string') throw new ApiError(400, 'id must be a string')
        const bridge = bridges.get(id)
        if (bridge === undefined) throw new ApiError(404, `no bridge ${id} (see mycelium bridge ls)`)
        bridges.delete(id)
        await bridge.stop()
        new BridgeBook(ctx.home).remove(id)
        return { removed: id }
      },
      'GET /dht/find-peer': async ({ query }) => {
        const peerId = query.get('peerId') ?? ''
        const { peerIdFromString } = await import('@libp2p/peer-id')
        let id
        try { id = peerIdFromString(peerId) } catch { throw new ApiError(400, `"${peerId}" is not a peer id`) }
        try {
          const info = await ctx.host().peerRouting.findPeer(id, { signal: AbortSignal.timeout(5_000) })
          return { peerId, found: true, addrs: info.multiaddrs.map(a => a.toString()) }
        } catch (err) {
          return { peerId, found: false, error: (err as Error).message }
        }
      }
    }),
    status: () => ({ bridges: bridges.size })
  }
}
