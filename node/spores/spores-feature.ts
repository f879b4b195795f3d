// The daemon's side of the spores: one level database in <home>/spores, the spores attached
// to the libp2p host (latent gossip, anti-entropy sync, primary epoch serving, own `node`,
// `health` and `uptime` entries), the membership checks, rejection metrics, and the admin API
// routes behind `mycelium spores …`. Other features (the primary-epoch consensus) reach the
// opened spores through `spores()` and `network()` and may pass an epoch verifier.
import { resolve } from 'node:path'
import { Level } from 'level'
import { Counter } from 'prom-client'
import type { PeerId } from '@libp2p/interface'
import {
  Spores, ENTRY_TYPES, TIERS, isEntryType, signerOf,
  SeedFileError, SchemaError,
  type SporesNetwork, type EpochCertificateVerifier, type SeedNode, type NodeValue, type TierName, type EntryType
} from '../../spores/index.ts'
import { decodeCanonical, encodeCanonical, peerIdOfPublicKey } from '../../crypto/index.ts'
import { decodeEncodedChain, encodeChain, verifyChain, protocolPrefix, topicPrefix } from '../../membership/index.ts'
import { ApiError, type Routes } from '../api/index.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import type { Home } from '../home/index.ts'
import { MemberBook } from './member-book.ts'
import { selfSummary } from './self-summary.ts'
import { seedConfirmation } from './seed-confirmation.ts'
import { sporesSettingsFromEnv } from './spores-settings.ts'
import { publishEntry, EntryNotStoredError } from './publish-entry.ts'

export interface SporesFeatureOptions {
  /** The consensus engine's quorum-certificate check for primary epochs (default: committee signatures). */
  epochVerifier?: (ctx: DaemonContext) => EpochCertificateVerifier
  /** The fewest committee candidates exclusions may leave (3f+1 of the consensus settings). */
  minCandidates?: () => number
}

export interface SporesFeature extends DaemonFeature {
  /** The opened spores (undefined before start and after stop). */
  spores: () => Spores | undefined
  /** The spores' networked half, attached to the host (undefined before start and after stop). */
  network: () => SporesNetwork | undefined
  /** The node's level database; other features keep their data in their own sublevels. */
  level: () => Level<string, Uint8Array> | undefined
}

const SEED_CONFIRM_TIMEOUT_MS = 10_000
const SERVICE_NAME = /^[A-Za-z0-9._-]{1,64}$/

/** Where the primary spore's chain may start: the epoch the invite vouched for (read while no epoch is held). */
function epochAnchorOf (home: Home): { epochAnchor?: { epoch: number, digest: Uint8Array } } {
  const anchor = home.loadEpochAnchor()
  return anchor === undefined ? {} : { epochAnchor: anchor }
}

function isTier (value: unknown): value is TierName {
  return typeof value === 'string' && (TIERS as readonly string[]).includes(value)
}

function record (b: unknown): Record<string, unknown> {
  return b !== null && typeof b === 'object' ? b as Record<string, unknown> : {}
}

function fileOf (b: unknown): string {
  const file = record(b).file
  if (typeof file !== 'string' || file === '') throw new ApiError(400, 'file must be a path')
  return resolve(file)
}

async function knownNodes (spores: Spores): Promise<SeedNode[]> {
  const nodes = new Map<string, SeedNode>()
  for (const tier of ['seed', 'latent'] as const) {
    for (const e of await spores.ls({ tier, type: 'node' })) nodes.set(e.key, { peerId: e.key, addrs: (e.value as NodeValue).addrs })
  }
  return [...nodes.values()]
}

/** Checks a membership chain (canonical CBOR array of certificates) for `peerId` in `network`. */
export function membershipCheck (rootPublicKey: Uint8Array, now: () => number, isRevoked: (peerId: string) => boolean = () => false) {
  return (membership: Uint8Array, peerId: string, network: string): boolean => {
    try {
      const chain = decodeEncodedChain(decodeCanonical(membership))
      return verifyChain(chain, { networkId: network, rootPublicKey, now: now(), isRevoked }) === peerId
    } catch {
      return false
    }
  }
}

export function sporesFeature (options: SporesFeatureOptions = {}): SporesFeature {
  let level: Level<string, Uint8Array> | undefined
  let spores: Spores | undefined
  let network: SporesNetwork | undefined
  let members: MemberBook | undefined
  let detach: (() => void) | undefined
  const startedAt = Date.now()

  let context: DaemonContext | undefined

  const running = (): { spores: Spores, network: SporesNetwork, ctx: DaemonContext } => {
    if (spores === undefined || network === undefined || context === undefined) throw new ApiError(503, 'the spores are not open yet; try again in a moment')
    return { spores, network, ctx: context }
  }

  const knownAddrs = async (peerId: string): Promise<string[]> => {
    const connected = context?.peers().find(p => p.peerId === peerId)?.addrs ?? []
    const entry = await spores?.tiers.latent.readById(`node/${peerId}`)
    return [...connected, ...(entry?.type === 'node' ? (entry.value as NodeValue).addrs : [])]
  }
  const confirm = () => seedConfirmation(() => running().ctx.host(), knownAddrs, async (peerId) => {
    // the confirming dial passed the handshake: the member counts until its certificate expires
    const expiresAt = context?.membership().expiryOf(peerId)
    if (expiresAt !== undefined) await members?.add(peerId, expiresAt)
  })

  return {
    name: 'spores',
    spores: () => spores,
    committee: () => spores?.primary.committee(),
    network: () => network,
    level: () => level,

    async start (ctx) {
      context = ctx
      const settings = sporesSettingsFromEnv()
      const rejections = new Counter({
        name: 'mycelium_spore_rejections_total',
        help: 'Spore entries not merged, by tier, entry type and reason',
        labelNames: ['tier', 'type', 'reason'] as const,
        registers: [ctx.metrics.registry]
      })
      const signer = signerOf(ctx.secretKey)
      const chain = ctx.home.loadChain()
      const membership = chain === undefined ? new Uint8Array(0) : encodeCanonical(encodeChain(chain))
      const db = new Level<string, Uint8Array>(ctx.home.path('spores'), { keyEncoding: 'utf8', valueEncoding: 'view' })
      await db.open()
      let book: MemberBook
      try {
        book = await MemberBook.open(db, [signer.peerId, peerIdOfPublicKey(ctx.network.rootPublicKey)])
        spores = await Spores.open({
          database: db,
          network: ctx.network.networkId,
          rootPublicKey: ctx.network.rootPublicKey,
          signer,
          limits: { maxEntries: settings.maxEntries, ...(options.minCandidates === undefined ? {} : { minCandidates: options.minCandidates() }), ...(settings.windowMs === undefined ? {} : { windowMs: settings.windowMs }) },
          log: ctx.log.child({ area: 'spores' }),
          rejections: { rejected: (tier, type, reason) => { rejections.inc({ tier, type, reason }) } },
          ...(options.epochVerifier === undefined ? {} : { epochVerifier: options.epochVerifier(ctx) }),
          ...epochAnchorOf(ctx.home),
          // Revocation first: a revoked origin's entries are refused whoever relays them. A peer
          // whose handshake finished before its connect event reached the book is a member too,
          // and so is one whose chain a roster carried (a member this node has no link to).
          isMember: (peerId) => {
            const members = ctx.membership()
            if (members.isRevoked(peerId)) return false
            if (book.has(peerId)) return true
            const expiresAt = members.memberExpiry(peerId)
            if (expiresAt === undefined) return false
            void book.add(peerId, expiresAt).catch(() => {})
            return true
          },
          membership: () => membership,
          checkMembership: membershipCheck(ctx.network.rootPublicKey, Date.now, (peerId) => ctx.membership().isRevoked(peerId))
        })
      } catch (err) {
        await db.close()
        throw err
      }
      level = db
      members = book
      if (spores.droppedAtOpen > 0) ctx.log.warn({ dropped: spores.droppedAtOpen }, 'undecodable spore records were removed at open')

      const host = ctx.host()
      // Listen before reading the current peers: a member that connects while the network
      // attaches must still enter the book, or its entries stay `unknown-origin` here.
      let net: typeof network
      /** members whose connect was logged: their disconnect is logged too */
      const recorded = new Set<string>()
      const onConnect = (evt: CustomEvent<PeerId>): void => {
        const peer = evt.detail
        const expiresAt = ctx.membership().expiryOf(peer.toString())
        if (expiresAt === undefined) return
        void book.add(peer.toString(), expiresAt)
          .then(async () => {
            // a connection record only for a link the topology keeps (not a dial on demand)
            const kept = ctx.keepsLink(peer.toString())
            if (kept) recorded.add(peer.toString())
            // the side that dialled starts the anti-entropy sync (it carries entries both ways):
            // when both did, each new link cost two sessions and most entries crossed twice
            const dialled = host.getConnections(peer).some(c => c.direction === 'outbound')
            await net?.peerConnected(peer, undefined, kept, dialled)
          })
          .catch(err => ctx.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'spores: peer connection handling failed'))
      }
      const onDisconnect = (evt: CustomEvent<PeerId>): void => {
        const id = evt.detail.toString()
        void net?.peerDisconnected(evt.detail, recorded.delete(id)).catch(() => {})
      }
      host.addEventListener('peer:connect', onConnect)
      host.addEventListener('peer:disconnect', onDisconnect)
      detach = () => {
        host.removeEventListener('peer:connect', onConnect)
        host.removeEventListener('peer:disconnect', onDisconnect)
      }
      // every peer the host reports has passed the membership handshake: its chain was verified
      for (const peer of ctx.peers()) {
        const expiresAt = ctx.membership().expiryOf(peer.peerId)
        if (expiresAt !== undefined) await book.add(peer.peerId, expiresAt)
      }
      network = await spores.attach({
        host,
        pubsub: host.services.pubsub,
        names: { protocolPrefix: protocolPrefix(ctx.network.networkId), topicPrefix: topicPrefix(ctx.network.networkId) },
        summary: () => selfSummary({ addrs: () => host.getMultiaddrs().map(a => a.toString()), role: ctx.role, startedAt, dataDir: ctx.home.dir, ...(ctx.config.labels === undefined ? {} : { labels: ctx.config.labels }) }),
        publishIntervalMs: settings.publishIntervalMs,
        ...(settings.refreshIntervalMs === undefined ? {} : { refreshMs: settings.refreshIntervalMs }),
        syncIntervalMs: settings.syncIntervalMs
      })
      net = network
      // peers that connected before the spores were open (bootstrap dials) reconcile now
      for (const peer of host.getPeers()) {
        const kept = ctx.keepsLink(peer.toString())
        if (kept) recorded.add(peer.toString())
        void network.peerConnected(peer, undefined, kept).catch(() => {})
      }
    },

    async stop () {
      detach?.()
      detach = undefined
      const s = spores
      const l = level
      spores = undefined
      network = undefined
      level = undefined
      await s?.close()
      await l?.close()
    },

    epochAnchor () {
      const latest = spores?.primary.latest()
      return latest === undefined ? undefined : { epoch: latest.header.epoch, digest: latest.digest }
    },

    status () {
      if (spores === undefined) return {}
      let entries = 0
      for (const type of ENTRY_TYPES) entries += spores.tiers.latent.count(type)
      return { spores: { latentEntries: entries, primaryEpoch: spores.primary.latest()?.header.epoch ?? null } }
    },

    routes (): Routes {
      return {
        'GET /spores': async ({ query }) => {
          const tier = query.get('tier') ?? undefined
          const type = query.get('type') ?? undefined
          if (tier !== undefined && !isTier(tier)) throw new ApiError(400, `unknown tier "${tier}": use one of ${TIERS.join(', ')}`)
          if (type !== undefined && !isEntryType(type)) throw new ApiError(400, `unknown entry type "${type}": use one of ${ENTRY_TYPES.join(', ')}`)
          return await running().spores.ls({ tier, type: type as EntryType | undefined })
        },
        'GET /spores/stats': async () => {
          const { spores: s } = running()
          return { ...s.stats(), quarantined: (await s.seed.quarantined()).length, members: members?.size ?? 0 }
        },
        'POST /spores/seed/export': async ({ body }) => {
          const file = fileOf(body)
          try {
            const s = running().spores
            // default: this node and the sclerotia; allNodes: every node whose entry the spores hold
            const nodes = record(body).allNodes === true ? await knownNodes(s) : undefined
            return { file, ...await s.exportSeed(file, nodes === undefined ? {} : { nodes }) }
          } catch (err) {
            if (err instanceof ApiError) throw err
            throw new ApiError(400, `cannot write the seed file ${file}: ${(err as Error).message}`)
          }
        },
        'POST /spores/seed/import': async ({ body }) => {
          const file = fileOf(body)
          try {
            return await running().spores.importSeed(file, confirm(), { confirmTimeoutMs: SEED_CONFIRM_TIMEOUT_MS, signal: AbortSignal.timeout(120_000) })
          } catch (err) {
            if (err instanceof SeedFileError) throw new ApiError(400, `${file}: ${err.message}`)
            throw err
          }
        },
        'POST /spores/seed/retry': async () => await running().spores.seed.retryQuarantined(confirm(), AbortSignal.timeout(120_000)),
        'GET /spores/seed/quarantine': async () => await running().spores.seed.quarantined(),
        'POST /spores/services': async ({ body }) => {
          const { spores: s, network: n } = running()
          const { name, endpoints, protocol } = record(body)
          if (typeof name !== 'string' || !Array.isArray(endpoints) || (protocol !== undefined && typeof protocol !== 'string')) throw new ApiError(400, 'name (string), endpoints (array of strings) and optionally protocol (string) are required')
          if (!SERVICE_NAME.test(name)) throw new ApiError(400, `service name "${name.slice(0, 80)}" must be 1-64 letters, digits, '.', '_' or '-'`)
          const me = s.signer.peerId
          const key = `${me}/${name}`
          let entry
          try {
            entry = await publishEntry(s, n, s.signer, { type: 'service', key, value: { name, endpoints, ...(protocol === undefined ? {} : { protocol }) } })
          } catch (err) {
            if (err instanceof SchemaError) throw new ApiError(400, `invalid service record: ${err.message}`)
            if (err instanceof EntryNotStoredError) throw new ApiError(409, err.message)
            throw err
          }
          return { type: 'service', key, origin: me, seq: entry.seq, issuedAt: entry.issuedAt, value: entry.value }
        }
      }
    }
  }
}
