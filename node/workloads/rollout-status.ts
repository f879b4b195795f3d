// What `app status` says of a rolling upgrade (workloads/placement/rollout.ts): how far it is,
// what it waits for, and whether it is stuck and why. A rollout is stuck when the new instance
// it waits for is unhealthy (it exits, or fails its health check) or has not become healthy
// within STUCK_MS as this node has watched it; the old instances go on serving meanwhile.
import type { InstanceSighting, Rollout } from '../../workloads/placement/index.ts'

const STUCK_MS = 30_000

export interface RolloutStatus {
  state: 'rolling' | 'stuck'
  /** the bundles being replaced, as their instances report them */
  from: string[]
  to: string
  /** healthy instances of the new bundle, of the hosts wanted */
  ready: number
  wanted: number
  /** old instances still running */
  old: number
  waitingFor?: { peerId: string, health: string, forMs: number }
  next?: { peerId: string, step: string }
  why: string
}

function short (peer: string): string {
  return `…${peer.slice(-8)}`
}

export class RolloutWatch {
  /** when this node first saw each new instance not healthy, by peer and bundle */
  private readonly pendingSince = new Map<string, number>()

  status (r: Rollout, digest: string, now = Date.now()): RolloutStatus {
    const waiting = r.waitingFor
    this.forget(waiting, digest)
    const base = { from: [...new Set(r.old.map(s => s.digest))], to: digest, ready: r.ready.length, wanted: r.hosts.length, old: r.old.length, ...(r.next === undefined ? {} : { next: { peerId: r.next.peerId, step: r.next.step } }) }
    if (waiting === undefined) {
      const why = r.next === undefined ? `every host runs the new bundle; ${r.old.length} old instance(s) stop as the rule allows` : `next: ${short(r.next.peerId)} ${r.next.step === 'surge' ? 'starts one extra instance of the new bundle' : r.next.step === 'replace' ? 'replaces its old instance' : 'starts the new bundle'}`
      return { state: 'rolling', ...base, why }
    }
    const key = `${waiting.peerId}/${digest}`
    const since = this.pendingSince.get(key) ?? now
    this.pendingSince.set(key, since)
    const forMs = now - since
    const at = { waitingFor: { peerId: waiting.peerId, health: waiting.health, forMs } }
    if (waiting.health === 'unhealthy') return { state: 'stuck', ...base, ...at, why: `the new bundle's instance on ${short(waiting.peerId)} is unhealthy (it exits or fails its health check); the rollout waits there and the old instances keep serving` }
    if (forMs > STUCK_MS) return { state: 'stuck', ...base, ...at, why: `the new bundle's instance on ${short(waiting.peerId)} has not become healthy in ${Math.round(forMs / 1000)} s; the rollout waits there and the old instances keep serving` }
    return { state: 'rolling', ...base, ...at, why: `waiting for the new bundle's instance on ${short(waiting.peerId)} to become healthy` }
  }

  /** Drops what no longer waits, so a later wait on the same node counts from its own start. */
  private forget (waiting: InstanceSighting | undefined, digest: string): void {
    const keep = waiting === undefined ? undefined : `${waiting.peerId}/${digest}`
    for (const key of this.pendingSince.keys()) if (key !== keep) this.pendingSince.delete(key)
  }
}
