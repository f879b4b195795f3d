// Primary epochs and trust in the daemon: the commit-reveal BFT engine of consensus/ over
// direct streams among the sclerotia beside the host's gossipsub (direct-links.ts), with the sclerotia (from the roles feature) as committee
// candidates, the spores' latent entries and primary tier as the epochs' input and sink, the
// trust ledger and its evidence behind `mycelium trust`, and the engine's metrics in the
// node's Prometheus registry.
import { Counter, Gauge, Histogram } from 'prom-client'
import {
  createConsensus, gossipsubTransport, consensusTopics, bftEpochVerifier, conductOf, minimumCommittee,
  type Consensus, type GossipsubLike
} from '../../consensus/index.ts'
import { committeeCertificateVerifier, retainedHeadersOf, type EpochCertificateVerifier } from '../../spores/index.ts'
import { protocolPrefix, topicPrefix } from '../../membership/index.ts'
import { ApiError, type Routes } from '../api/index.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import type { SporesFeature } from '../spores/index.ts'
import { consensusSettingsFromEnv, type ConsensusSettings } from './consensus-settings.ts'
import { writeGenesis } from './genesis-epoch.ts'
import { publishTrustEntry } from './trust-entries.ts'
import { publishExclusionEntry } from './exclusion-entries.ts'
import { FileVoteStore, VOTES_FILE } from './vote-file.ts'
import { badLeader, forgeEvidence } from './byzantine-conduct.ts'
import { directLinks, type DirectLinks } from './direct-links.ts'
import { catchUpStream, type CatchUpStream } from './catch-up-stream.ts'

const SCLEROTIUM = 'sclerotium'
/** The administrator node writes the first epoch once the sclerotia it sees stayed the same this long. */
const GENESIS_SETTLE_MS = 3000
const WAIT_STEP_MS = 1000

export interface ConsensusFeature extends DaemonFeature {
  consensus: () => Consensus | undefined
}

/** The primary tier's check: BFT certificates after the first epoch, the root's signature on it. */
export function consensusEpochVerifier (ctx: DaemonContext): EpochCertificateVerifier {
  const { f, committeeSize } = consensusSettingsFromEnv()
  return bftEpochVerifier({ f, committeeSize, genesis: committeeCertificateVerifier({ rootPublicKey: ctx.network.rootPublicKey }) }) as EpochCertificateVerifier
}

/** The fewest candidates a committee of the configured f needs: exclusions never go below it. */
export function consensusMinCandidates (): number {
  return minimumCommittee(consensusSettingsFromEnv().f)
}

function metricsOf (ctx: DaemonContext): NonNullable<Parameters<typeof createConsensus>[0]['metricsSink']> {
  const registers = [ctx.metrics.registry]
  const latency = new Histogram({ name: 'mycelium_bft_round_latency_seconds', help: 'Time from proposal to certificate of certified BFT rounds, by operation', labelNames: ['op'] as const, buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10], registers })
  const failed = new Counter({ name: 'mycelium_bft_rounds_failed_total', help: 'BFT rounds that failed without a certificate, by operation and reason', labelNames: ['op', 'reason'] as const, registers })
  const slashes = new Counter({ name: 'mycelium_bft_slashes_total', help: 'Slashes applied to the trust ledger, by reason', labelNames: ['reason'] as const, registers })
  const readOnly = new Gauge({ name: 'mycelium_bft_read_only', help: '1 while this node is read-only for primary epochs (split brain), else 0', registers })
  return {
    roundLatency: (op, ms) => { latency.observe({ op }, ms / 1000) },
    roundFailed: (op, reason) => { failed.inc({ op, reason }) },
    slashed: (reason) => { slashes.inc({ reason }) },
    readOnly: (value) => { readOnly.set(value ? 1 : 0) }
  }
}

export function consensusFeature (options: { spores: SporesFeature, roleOf?: (peerId: string) => string | undefined }): ConsensusFeature {
  let consensus: Consensus | undefined
  let settings: ConsensusSettings | undefined
  let waiting: string | undefined = 'not started'
  const abort = new AbortController()
  let starting: Promise<void> | undefined
  let stopForging: (() => void) | undefined
  let links: DirectLinks | undefined
  let catchUp: CatchUpStream | undefined

  const running = (): Consensus => {
    if (consensus === undefined) throw new ApiError(503, `primary epochs are not running yet: ${waiting ?? 'starting'}`)
    return consensus
  }

  const sclerotia = (ctx: DaemonContext): string[] => {
    const self = ctx.host().peerId.toString()
    const peers = ctx.peers()
    const roleOf = (peerId: string, announced: string): string => options.roleOf?.(peerId) ?? announced
    const picked = peers.filter(p => roleOf(p.peerId, p.role) === SCLEROTIUM).map(p => p.peerId)
    if (ctx.role() === SCLEROTIUM) picked.push(self)
    // without roles every member is a candidate
    if (picked.length === 0) return [self, ...peers.map(p => p.peerId)].sort()
    return [...new Set(picked)].sort()
  }

  const isConnected = (ctx: DaemonContext) => (peerId: string): boolean =>
    ctx.host().getConnections().some(c => c.status === 'open' && c.remotePeer.toString() === peerId)

  const sleep = async (ms: number, signal: AbortSignal): Promise<void> => {
    await new Promise<void>(resolve => {
      const t = setTimeout(resolve, ms)
      signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
    })
  }

  // Waits for the first epoch (writing it on the administrator node, fetching it elsewhere),
  // then starts the engine anchored on the latest certified epoch.
  const begin = async (ctx: DaemonContext, s: ConsensusSettings): Promise<void> => {
    const log = ctx.log.child({ area: 'consensus' })
    const rootKey = ctx.home.hasRootKey() ? ctx.home.loadRootKey(ctx.network) : undefined
    let seen = ''
    let seenSince = Date.now()
    const signal = abort.signal
    while (!signal.aborted) {
      const spores = options.spores.spores()
      const net = options.spores.network()
      if (spores !== undefined && net !== undefined) {
        const anchor = await spores.epochInput.anchor()
        if (anchor !== undefined) break
        const candidates = sclerotia(ctx)
        const key = candidates.join(',')
        if (key !== seen) { seen = key; seenSince = Date.now() }
        if (rootKey !== undefined) {
          waiting = `waiting for ${s.committeeSize} sclerotia to write the first epoch (${candidates.length} seen)`
          if (candidates.length >= s.committeeSize && Date.now() - seenSince >= GENESIS_SETTLE_MS) {
            await writeGenesis(spores, { network: ctx.network.networkId, rootSecretKey: rootKey, candidates, now: Date.now() })
            log.info({ candidates }, 'first primary epoch written')
            continue
          }
        } else {
          waiting = 'waiting for the first primary epoch from the network\'s administrator node'
          for (const peer of ctx.host().getPeers()) {
            if (signal.aborted) break
            try {
              if (await net.epochs.fetchFrom(peer, AbortSignal.any([signal, AbortSignal.timeout(5000)])) !== undefined) break
            } catch {}
          }
          if (await spores.epochInput.anchor() !== undefined) continue
        }
      }
      await sleep(WAIT_STEP_MS, signal)
    }
    if (signal.aborted) return
    const spores = options.spores.spores()
    const anchor = await spores?.epochInput.anchor()
    if (spores === undefined || anchor === undefined) return
    const connected = isConnected(ctx)
    links = directLinks({
      host: ctx.host(),
      gossip: gossipsubTransport(ctx.host().services.pubsub as unknown as GossipsubLike),
      protocol: `${protocolPrefix(ctx.network.networkId)}/bft/direct/1.0.0`,
      directTopic: consensusTopics(topicPrefix(ctx.network.networkId)).rounds,
      accepts: ctx.isVerified,
      // the committee is drawn from the latest epoch's candidates; the sclerotia seen now
      // are the next ones
      targets: () => [...(consensus?.epochs.chain.latest()?.candidates ?? []), ...sclerotia(ctx)],
      log
    })
    await links.start()
    // A member behind asks one member at a time for the epochs it lacks (not the whole network).
    catchUp = catchUpStream({
      host: ctx.host(),
      protocol: `${protocolPrefix(ctx.network.networkId)}/bft/catch-up/1.0.0`,
      accepts: ctx.isVerified,
      answer: () => { const c = consensus; return c === undefined ? undefined : async (request) => await c.epochs.serve(request) },
      preferred: () => consensus?.epochs.chain.latest()?.candidates ?? [],
      log
    })
    await catchUp.start()
    consensus = createConsensus({
      signer: { peerId: ctx.host().peerId.toString(), secretKey: ctx.secretKey },
      pubsub: links,
      topicPrefix: topicPrefix(ctx.network.networkId),
      f: s.f,
      committeeSize: s.committeeSize,
      conduct: conductOf(s.conduct),
      isConnected: connected,
      votes: new FileVoteStore(ctx.home.path(VOTES_FILE), log),
      isDown: async (peerId) => !connected(peerId),
      metricsSink: metricsOf(ctx),
      log,
      epochs: {
        source: spores.epochInput,
        sink: spores.epochInput,
        anchor,
        intervalMs: s.intervalMs,
        catchUp,
        headers: retainedHeadersOf(spores.primary),
        proposalConduct: s.leader.includes('bad-leader') ? badLeader({ peerId: ctx.host().peerId.toString(), secretKey: ctx.secretKey }) : undefined
      }
    })
    const c = consensus
    c.engine.ledger.onSlash((peerId, slash) => {
      const net = options.spores.network()
      if (net === undefined) return
      publishTrustEntry(spores, net, peerId, slash, c.engine.ledger.trust(peerId), log)
      publishExclusionEntry(spores, net, peerId, slash, c.engine.evidence(slash.evidenceId), log)
    })
    consensus.start()
    if (s.leader.includes('forge-evidence')) stopForging = forgeEvidence(gossipsubTransport(ctx.host().services.pubsub as unknown as GossipsubLike), topicPrefix(ctx.network.networkId), ctx.host().peerId.toString())
    waiting = undefined
    if (s.conduct !== 'honest' || s.leader.length > 0) log.warn({ conduct: s.conduct, leader: s.leader }, 'this node plays a Byzantine committee member (test flag --bft-conduct)')
    log.info({ f: s.f, intervalMs: s.intervalMs, epoch: consensus.epochs.chain.latest()?.epoch }, 'primary epochs running')
  }

  return {
    name: 'consensus',
    consensus: () => consensus,

    async start (ctx) {
      settings = consensusSettingsFromEnv()
      const s = settings
      starting = begin(ctx, s).catch(err => { waiting = `failed to start: ${(err as Error).message}`; ctx.log.error({ err: (err as Error).message }, 'primary epochs failed to start') })
    },

    async stop () {
      abort.abort()
      await starting
      stopForging?.()
      const c = consensus
      consensus = undefined
      await c?.stop()
      await links?.stop()
      await catchUp?.stop()
    },

    status () {
      if (consensus === undefined) return { consensus: { running: false, waiting } }
      const report = consensus.epochsReport(1)
      return { consensus: { running: true, f: settings?.f, committeeSize: settings?.committeeSize, epochIntervalS: (settings?.intervalMs ?? 0) / 1000, epoch: report.latest, readOnly: report.readOnly, ...(report.readOnlyReason === undefined ? {} : { readOnlyReason: report.readOnlyReason }) } }
    },

    routes (ctx): Routes {
      return {
        'GET /spores/epochs': async ({ query }) => {
          const raw = query.get('limit') ?? '16'
          const limit = Number(raw)
          if (!Number.isInteger(limit) || limit < 1 || limit > 1024) throw new ApiError(400, `limit must be an integer from 1 to 1024 (got "${raw}")`)
          const c = running()
          return { self: ctx.host().peerId.toString(), f: settings?.f, committeeSize: settings?.committeeSize, epochIntervalS: (settings?.intervalMs ?? 0) / 1000, ...c.epochsReport(limit), metrics: c.metrics() }
        },
        'GET /trust': async () => {
          const c = running()
          return { self: ctx.host().peerId.toString(), ...c.trustReport() }
        },
        'GET /trust/evidence': async ({ query }) => {
          const id = query.get('id') ?? ''
          const evidence = running().evidence(id)
          if (evidence === undefined) throw new ApiError(404, `no evidence with id "${id.slice(0, 80)}" on this node`)
          return { id, evidence }
        }
      }
    }
  }
}
