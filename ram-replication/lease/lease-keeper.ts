// Keeps a held lease alive and the guest inside it: renews every quarter of the lease, stops
// the vCPU a margin before the lease would end without a renewal, runs it again once renewed,
// and stops it for good when another node holds a newer term.
import type { ReplicationLogger } from '../transport/protocols.ts'
import { silentLogger } from '../transport/protocols.ts'
import type { LeaseHolder } from './lease-holder.ts'
import { DEFAULT_PAUSE_MARGIN_MS } from './lease-terms.ts'

/** What the keeper needs of the guest: stop and start its vCPU. */
export interface FencedGuest {
  pause: () => Promise<void>
  resume: () => void
}

export interface LeaseKeeperOptions {
  holder: LeaseHolder
  guest: FencedGuest
  /** The newest epoch this host has (sent with renewals, for the voters' choice). */
  epoch?: () => number
  pauseMarginMs?: number
  onSuperseded?: (by: { term: number, holder?: string }) => void
  logger?: ReplicationLogger
}

export interface LeaseKeeperStatus {
  term: number
  holds: boolean
  remainingMs: number
  voters: string[]
  generation: number
  /** Times the guest was stopped because the lease was about to end. */
  fencedPauses: number
  fenced: boolean
  supersededBy?: { term: number, holder?: string }
}

export class LeaseKeeper {
  readonly holder: LeaseHolder
  private readonly guest: FencedGuest
  private readonly epoch: () => number
  private readonly marginMs: number
  private readonly onSuperseded?: (by: { term: number, holder?: string }) => void
  private readonly logger: ReplicationLogger
  private renewTimer?: ReturnType<typeof setTimeout>
  private fenceTimer?: ReturnType<typeof setTimeout>
  private stopped = false
  private fenced = false
  private fencing?: Promise<void>
  private fencedPauses = 0

  constructor (options: LeaseKeeperOptions) {
    this.holder = options.holder
    this.guest = options.guest
    this.epoch = options.epoch ?? (() => 0)
    this.marginMs = options.pauseMarginMs ?? DEFAULT_PAUSE_MARGIN_MS
    this.onSuperseded = options.onSuperseded
    this.logger = options.logger ?? silentLogger
  }

  /** Begin keeping a lease the holder already holds. */
  start (): void {
    this.armFence()
    this.scheduleRenew(0)
  }

  /** Stop renewing (the VM stopped, or it is handed over). The guest is not touched. */
  stop (): void {
    this.stopped = true
    clearTimeout(this.renewTimer)
    clearTimeout(this.fenceTimer)
  }

  status (): LeaseKeeperStatus {
    return {
      term: this.holder.term,
      holds: this.holder.holds(),
      remainingMs: Math.max(0, Math.round(this.holder.remainingMs())),
      voters: this.holder.group.voters,
      generation: this.holder.group.generation,
      fencedPauses: this.fencedPauses,
      fenced: this.fenced,
      ...(this.holder.supersededBy === undefined ? {} : { supersededBy: this.holder.supersededBy })
    }
  }

  /** Wait until a pause begun by the fence has completed. */
  async settled (): Promise<void> {
    await this.fencing
  }

  private scheduleRenew (delayMs: number): void {
    if (this.stopped) return
    this.renewTimer = setTimeout(() => { void this.renew() }, delayMs)
    this.renewTimer.unref?.()
  }

  private async renew (): Promise<void> {
    if (this.stopped) return
    const startedAt = performance.now()
    const round = await this.holder.renew(this.epoch())
    if (this.stopped) return
    if (this.holder.supersededBy !== undefined) {
      this.stop()
      await this.fence()
      this.logger.warn('lease of %s: term %d is held by %s: standing down', this.holder.vmId, this.holder.supersededBy.term, this.holder.supersededBy.holder ?? 'another node')
      this.onSuperseded?.(this.holder.supersededBy)
      return
    }
    if (round.granted) {
      this.armFence()
      if (this.fenced && this.holder.remainingMs() > this.marginMs) {
        await this.fencing
        this.fenced = false
        this.guest.resume()
        this.logger.info('lease of %s renewed: guest runs again', this.holder.vmId)
      }
    }
    // a steady cadence from the start of each round, whatever the round took
    this.scheduleRenew(Math.max(10, Math.floor(this.holder.durationMs / 4 - (performance.now() - startedAt))))
  }

  private armFence (): void {
    clearTimeout(this.fenceTimer)
    if (this.stopped) return
    const delay = this.holder.remainingMs() - this.marginMs
    if (delay <= 0) { void this.fence(); return }
    // (a timer may fire a fraction of a millisecond early: then it is armed again)
    this.fenceTimer = setTimeout(() => { this.armFence() }, Math.ceil(delay))
    this.fenceTimer.unref?.()
  }

  private async fence (): Promise<void> {
    if (this.fenced) { await this.fencing; return }
    this.fenced = true
    this.fencedPauses++
    this.logger.warn('lease of %s about to end without renewal: stopping the guest', this.holder.vmId)
    this.fencing = this.guest.pause().catch((error: Error) => { this.logger.error('could not stop the guest of %s: %s', this.holder.vmId, error.message) })
    await this.fencing
  }
}
