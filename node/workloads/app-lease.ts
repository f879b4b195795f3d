// Single-instance applications (`--max 1`) run only under a lease, as VMs do
// (ram-replication/lease, whose safety argument applies unchanged): the plan names a fixed group
// of voters, a node runs the instance only while a majority of that group grants it the current
// term, it freezes the instance's processes (SIGSTOP, which no process can ignore) a margin
// before the lease could end without a renewal, and it stops the instance for good once a voter
// shows a newer term. A partitioned or stalled holder therefore stops running before any other
// node can be granted the next term: never two running instances, whatever fails.
import { join } from 'node:path'
import {
  LeaseService, LeaseHolder, LeaseKeeper, type LeaseGroup
} from '../../ram-replication/index.ts'
import { protocolPrefix } from '../../membership/index.ts'
import type { MyceliumHost } from '../host/index.ts'
import type { Logger } from '../log/index.ts'
import { fileVoterStore } from '../vm/index.ts'

export const APP_LEASE_MS = 3_000
const PAUSE_MARGIN_MS = 500
const VOTES_FILE = 'app-leases.json'

export function appLeaseProtocol (networkId: string): string {
  return `${protocolPrefix(networkId)}/app/lease/1.0.0`
}

export interface LeasedInstance {
  /** freeze every process of the instance (it must not run a single instruction more) */
  freeze: () => Promise<void>
  thaw: () => void
  /** another node holds a newer term: stop for good */
  superseded: () => void
}

interface Held {
  holder: LeaseHolder
  keeper?: LeaseKeeper
}

function leaseId (app: string): string {
  return `app.${app}`
}

export class AppLeases {
  private readonly service: LeaseService
  private readonly log: Logger
  private readonly self: string
  private readonly held = new Map<string, Held>()
  /** the newest term voters reported for each application, to ask for the next one */
  private readonly newest = new Map<string, number>()

  constructor (options: { host: MyceliumHost, networkId: string, homeDir: string, log: Logger }) {
    this.log = options.log
    this.self = options.host.peerId.toString()
    const logger = { info: (m: string, ...a: unknown[]) => { this.log.info({ args: a }, m) }, warn: (m: string, ...a: unknown[]) => { this.log.warn({ args: a }, m) }, debug: (m: string, ...a: unknown[]) => { this.log.debug({ args: a }, m) }, error: (m: string, ...a: unknown[]) => { this.log.error({ args: a }, m) } }
    this.service = new LeaseService(options.host, {
      protocolPrefix: protocolPrefix(options.networkId),
      protocol: appLeaseProtocol(options.networkId),
      store: fileVoterStore(join(options.homeDir, VOTES_FILE), options.log),
      anyCandidate: true,
      logger
    })
  }

  async start (): Promise<void> {
    await this.service.start()
  }

  async stop (): Promise<void> {
    for (const h of this.held.values()) h.keeper?.stop()
    await this.service.stop()
  }

  /** True while this node holds the lease of `app`. */
  holds (app: string): boolean {
    return this.held.get(app)?.holder.holds() === true
  }

  /** Asks the plan's voters for the next term of `app`; true when a majority granted it. */
  async acquire (app: string, voters: readonly string[]): Promise<boolean> {
    const group: LeaseGroup = { generation: 1, voters: [...voters] }
    const existing = this.held.get(app)
    if (existing?.holder.holds() === true) return true
    const holder = new LeaseHolder({ vmId: leaseId(app), self: this.self, ask: this.service.ask, durationMs: APP_LEASE_MS })
    const term = (this.newest.get(app) ?? 0) + 1
    const round = await holder.acquire(term, group, 0)
    this.newest.set(app, Math.max(term, round.newestTerm))
    if (!round.granted) {
      this.log.debug({ app, term, refusals: round.refusals }, 'single-instance lease not granted (yet)')
      return false
    }
    this.held.set(app, { holder })
    this.log.info({ app, term, voters: group.voters }, 'single-instance lease granted')
    return true
  }

  /** Keeps the lease of a started instance: renews it, freezes the instance before it could lapse. */
  keep (app: string, instance: LeasedInstance): void {
    const h = this.held.get(app)
    if (h === undefined) return
    h.keeper?.stop()
    h.keeper = new LeaseKeeper({
      holder: h.holder,
      guest: { pause: instance.freeze, resume: instance.thaw },
      pauseMarginMs: PAUSE_MARGIN_MS,
      onSuperseded: (by) => {
        this.log.warn({ app, term: by.term, holder: by.holder }, 'another node holds a newer term of this single-instance application: stopping here')
        this.held.delete(app)
        instance.superseded()
      }
    })
    h.keeper.start()
  }

  /** The instance here has stopped: give the term up so the next host need not wait for it to lapse. */
  async release (app: string): Promise<void> {
    const h = this.held.get(app)
    if (h === undefined) return
    this.held.delete(app)
    h.keeper?.stop()
    await h.holder.release().catch(() => {})
  }

  status (app: string): { term: number, holds: boolean, remainingMs: number, voters: string[] } | undefined {
    const h = this.held.get(app)
    if (h === undefined) return undefined
    return { term: h.holder.term, holds: h.holder.holds(), remainingMs: Math.max(0, Math.round(h.holder.remainingMs())), voters: h.holder.group.voters }
  }
}
