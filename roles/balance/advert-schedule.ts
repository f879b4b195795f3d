// When this node publishes its role advertisement: at once when what others act on changed
// (role, pins, fitness, movability, addresses), else only at a slow refresh with jitter. Every
// node receives every other node's refreshes, N per period, so the period — not the evaluation
// tick — sets the idle cost of the roles topic; a change still travels within one tick.
// The score is left out of "changed": it follows the machine's load and would move at every
// measurement. Balancing ranks this node by its advertised score (RoleService), the one every
// other node ranks it by, so a score that waits for the refresh cannot split the views.
import type { RoleAdvertisement } from './role-advertisement.ts'

export type AdvertContent = Pick<RoleAdvertisement, 'role' | 'dedicated' | 'pinned' | 'fit' | 'movable' | 'addrs'>

/** The fields whose change is published at once. */
export function contentKey (c: AdvertContent): string {
  return JSON.stringify([c.role, c.dedicated, c.pinned, c.fit, c.movable, c.addrs])
}

export class AdvertSchedule {
  private readonly refreshMs: number
  private readonly random: () => number
  private lastKey: string | undefined
  private nextRefreshAt = 0
  private asked = false

  private readonly warmupMs: number
  private publications = 0

  /**
   * `random` in [0, 1): injected so a simulator replays the same jitter from its seed.
   * `warmupMs`: a node's first advertisements go out again after 1, 2, 4 and 8 × warmupMs (then
   * at the refresh): while a node joins, gossipsub's mesh around it is still forming and its
   * first publication may reach only its direct peers. Four more messages per join.
   */
  constructor (refreshMs: number, random: () => number = Math.random, warmupMs = refreshMs) {
    this.refreshMs = refreshMs
    this.random = random
    this.warmupMs = warmupMs
  }

  /** Whether to publish now: nothing published yet, content changed, a refresh is due, or one was asked for. */
  due (now: number, content: AdvertContent): boolean {
    return this.asked || this.lastKey === undefined || this.lastKey !== contentKey(content) || now >= this.nextRefreshAt
  }

  /** A publication went out: the next refresh is ¾ to 1 refresh period from now, never later (sooner while warming up). */
  published (now: number, content: AdvertContent): void {
    this.asked = false
    this.lastKey = contentKey(content)
    const refresh = Math.floor(this.refreshMs * (0.75 + 0.25 * this.random()))
    this.nextRefreshAt = now + (this.publications < 4 ? Math.min(refresh, this.warmupMs * 2 ** this.publications) : refresh)
    this.publications++
  }

  /** Publishing failed (no peer on the topic yet): try again at the next tick. */
  failed (): void {
    this.lastKey = undefined
  }

  /** Publish at the next opportunity (a departure named this node while it is alive). */
  ask (): void {
    this.asked = true
  }

  /** When the next refresh is due (for tests and the report). */
  get refreshAt (): number {
    return this.nextRefreshAt
  }
}
