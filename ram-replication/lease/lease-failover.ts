// A backup's side of failover: when the lease of a VM it holds a replica of has run out on its
// own voter's clock, it asks the group for the next term with its newest applied epoch. The
// voters' preference (lease-voter.ts) lets the newest backup win when it is reachable, and the
// quorum lets at most one win at all. Only the winner resumes the guest, and it keeps the lease
// from the first instant, so the guest never runs here without it.
import type { ReplicatedGuest } from '../checkpoint.ts'
import type { ReplicationLogger } from '../transport/protocols.ts'
import { silentLogger } from '../transport/protocols.ts'
import type { ReplicaStatus } from '../backup/replica-host.ts'
import { LeaseHolder } from './lease-holder.ts'
import { LeaseKeeper } from './lease-keeper.ts'
import type { LeaseService } from './lease-service.ts'
import { DEFAULT_LEASE_MS, LEASE_DRIFT } from './lease-terms.ts'
import { fencedGuest } from './fenced-guest.ts'
import type { Fence } from './fenced-guest.ts'

/** The backup side the failover drives (a ReplicaHost). */
export interface FailoverReplicas {
  status: () => ReplicaStatus[]
  resume: (vmId: string) => Promise<ReplicatedGuest>
  drop: (vmId: string) => void
}

export interface TakeOver {
  vmId: string
  /** `failover`: the lease ran out; `migration`: the holder handed it over */
  how: 'failover' | 'migration'
  guest: ReplicatedGuest
  keeper: LeaseKeeper
  /** The primary whose lease ran out, and the epoch the guest resumed from. */
  from: string
  epoch: number
  guestCounter: number
  /** Monotonic ms: when this node saw the lease free, and when the guest ran again. */
  leaseFreeAt: number
  resumedAt: number
}

export interface LeaseFailoverOptions {
  leases: LeaseService
  replicas: FailoverReplicas
  durationMs?: number
  checkEveryMs?: number
  /** Between backups of different rank, so the best one usually asks first (ms per rank). */
  rankDelayMs?: number
  onTakeOver: (takeOver: TakeOver) => void
  onSuperseded?: (vmId: string, by: { term: number, holder?: string }) => void
  logger?: ReplicationLogger
}

export class LeaseFailover {
  private readonly o: LeaseFailoverOptions
  private readonly logger: ReplicationLogger
  private readonly campaigning = new Set<string>()
  /** VMs whose guest would not start here: this node stops preferring itself for them. */
  private readonly unresumable = new Set<string>()
  private timer?: ReturnType<typeof setInterval>
  campaigns = 0

  constructor (options: LeaseFailoverOptions) {
    this.o = options
    this.logger = options.logger ?? silentLogger
  }

  start (): void {
    this.timer = setInterval(() => { this.check() }, this.o.checkEveryMs ?? 25)
    this.timer.unref?.()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  failedToResume (vmId: string): boolean {
    return this.unresumable.has(vmId)
  }

  private check (): void {
    const self = this.o.leases.self
    for (const replica of this.o.replicas.status()) {
      if (replica.state === 'resumed' || replica.appliedEpoch === 0 || this.campaigning.has(replica.vmId) || this.unresumable.has(replica.vmId)) continue
      const view = this.o.leases.voter.view(replica.vmId)
      if (view === undefined || view.holder === self) continue
      const rank = view.group.voters.indexOf(self)
      if (rank < 0) {
        // the VM moved to a group without this node (re-protected elsewhere): its copy here is stale
        this.logger.info('%s is no longer backed up here (its lease group left this node): dropping the replica', replica.vmId)
        this.o.replicas.drop(replica.vmId)
        continue
      }
      if (view.remainingMs > 0) continue
      // A released term is a handover in progress: its target takes the lease (takeOverNow).
      // The others wait as long as the lease would have run anyway before they ask.
      if (view.releasedMs !== undefined && view.releasedMs < (this.o.durationMs ?? DEFAULT_LEASE_MS) * (1 + LEASE_DRIFT)) continue
      this.campaigning.add(replica.vmId)
      void this.campaign(replica, view.term, view.holder, Math.max(0, rank - 1) * (this.o.rankDelayMs ?? 30))
        .catch((error: Error) => { this.logger.error('failover of %s failed: %s', replica.vmId, error.message) })
        .finally(() => { this.campaigning.delete(replica.vmId) })
    }
  }

  private async campaign (replica: ReplicaStatus, term: number, from: string, delayMs: number): Promise<void> {
    const leaseFreeAt = performance.now()
    if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
    const view = this.o.leases.voter.view(replica.vmId)
    // Someone else took the next term meanwhile (its request reached this node's voter).
    if (view === undefined || view.term !== term || view.remainingMs > 0) return
    this.campaigns++
    const current = this.o.replicas.status().find(r => r.vmId === replica.vmId) ?? replica
    const holder = this.holderFor(replica.vmId)
    const round = await holder.acquire(term + 1, view.group, current.appliedEpoch)
    if (!round.granted) {
      this.logger.debug('no lease for %s at term %d: %j', replica.vmId, term + 1, round.refusals)
      if (round.refusals.filter(r => r.reason === 'stale-group').length >= Math.ceil(view.group.voters.length / 2)) {
        this.logger.info('%s moved to another group: dropping its replica here', replica.vmId)
        this.o.replicas.drop(replica.vmId)
      }
      await new Promise(resolve => setTimeout(resolve, 50))
      return
    }
    await this.runUnder(holder, replica.vmId, from, leaseFreeAt, 'failover', async () => await this.o.replicas.resume(replica.vmId))
  }

  /**
   * A migration's handover: the source gave its lease up; take the next term (retrying until a
   * lease could have run out anyway) and only then start the guest here through `start`.
   */
  async takeOverNow (vmId: string, start: () => Promise<ReplicatedGuest>): Promise<ReplicatedGuest> {
    const freeAt = performance.now()
    const deadline = freeAt + (this.o.durationMs ?? DEFAULT_LEASE_MS) * (1 + LEASE_DRIFT) + 250
    const epoch = (): number => this.o.replicas.status().find(r => r.vmId === vmId)?.appliedEpoch ?? 0
    this.campaigning.add(vmId)
    try {
      for (;;) {
        const view = this.o.leases.voter.view(vmId)
        if (view === undefined) throw new Error(`no lease group of ${vmId} is known here`)
        const holder = this.holderFor(vmId)
        const round = await holder.acquire(view.term + 1, view.group, epoch(), undefined, { probe: false })
        if (round.granted) return await this.runUnder(holder, vmId, view.holder, freeAt, 'migration', start)
        if (performance.now() > deadline) throw new Error(`no quorum granted ${vmId}'s lease for the handover: ${JSON.stringify(round.refusals)}`)
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    } finally {
      this.campaigning.delete(vmId)
    }
  }

  private holderFor (vmId: string): LeaseHolder {
    return new LeaseHolder({ vmId, self: this.o.leases.self, ask: this.o.leases.ask, durationMs: this.o.durationMs ?? DEFAULT_LEASE_MS })
  }

  /** Start the guest under a lease just won: renewals and the fence begin before it runs. */
  private async runUnder (holder: LeaseHolder, vmId: string, from: string, leaseFreeAt: number, how: TakeOver['how'], start: () => Promise<ReplicatedGuest>): Promise<ReplicatedGuest> {
    let guest: (ReplicatedGuest & Fence) | undefined
    let fenceWanted = false
    const keeper = new LeaseKeeper({
      holder,
      guest: {
        pause: async () => { fenceWanted = true; await guest?.fence() },
        resume: () => { fenceWanted = false; guest?.unfence() }
      },
      epoch: () => this.o.replicas.status().find(r => r.vmId === vmId)?.appliedEpoch ?? 0,
      logger: this.logger,
      onSuperseded: (by) => {
        void guest?.stop()
        this.o.onSuperseded?.(vmId, by)
      }
    })
    keeper.start()
    try {
      guest = fencedGuest(await start())
    } catch (error) {
      // the lease runs out unrenewed, and the other backups may take it
      keeper.stop()
      this.unresumable.add(vmId)
      throw error
    }
    if (fenceWanted) await guest.fence()
    const resumed = this.o.replicas.status().find(r => r.vmId === vmId)
    this.logger.info('lease of %s at term %d: guest resumed here from epoch %d', vmId, holder.term, resumed?.appliedEpoch ?? 0)
    this.o.onTakeOver({
      vmId,
      how,
      guest,
      keeper,
      from,
      epoch: resumed?.appliedEpoch ?? 0,
      guestCounter: resumed?.guestCounter ?? guest.guestCounter(),
      leaseFreeAt,
      resumedAt: performance.now()
    })
    return guest
  }
}
