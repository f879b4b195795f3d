// Applies a role to the running node, without a restart. Applications are serialised so a
// quick promote/demote pair cannot interleave; a failed effect is logged and retried on the
// next application instead of leaving the node half-switched silently.
import type { Role } from '../policy/role.ts'
import type { RoleLogger } from '../role-host.ts'
import { behaviourOf, type RoleBehaviour } from './role-behaviour.ts'
import type { RoleEffects } from './role-effects.ts'

export interface Anchors {
  start: () => void
  stop: () => void
}

export interface RoleControllerOptions {
  effects: RoleEffects
  /** Started while the node is a hyphae, stopped otherwise. */
  anchors?: Anchors
  log: RoleLogger
}

export class RoleEffectError extends Error {
  readonly name = 'RoleEffectError'
}

export class RoleController {
  private readonly options: RoleControllerOptions
  private applied?: RoleBehaviour
  private queue: Promise<unknown> = Promise.resolve()

  constructor (options: RoleControllerOptions) {
    this.options = options
  }

  current (): RoleBehaviour | undefined {
    return this.applied
  }

  async apply (role: Role, dedicated: boolean, capabilities: { vmBackups: boolean }): Promise<RoleBehaviour> {
    const run = this.queue.then(async () => await this.applyNow(behaviourOf(role, dedicated, capabilities)))
    this.queue = run.catch(() => {})
    return await run
  }

  private async applyNow (next: RoleBehaviour): Promise<RoleBehaviour> {
    const { effects, anchors, log } = this.options
    const failures: string[] = []
    const attempt = async (what: string, fn: () => void | Promise<void>): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message}`)
      }
    }
    // widen before narrowing: a new sclerotium serves before anchors are dropped
    if (next.keepsAnchors) {
      await attempt('relay', () => effects.setRelayServer(next.relay))
      await attempt('dht', () => effects.setDhtMode(next.dht))
      anchors?.start()
    } else {
      anchors?.stop()
      await attempt('dht', () => effects.setDhtMode(next.dht))
      await attempt('relay', () => effects.setRelayServer(next.relay))
    }
    if (effects.onApplied !== undefined) await attempt('services', () => effects.onApplied?.(next))
    this.applied = next
    if (failures.length > 0) {
      log.error({ role: next.role, failures }, 'role applied with failures')
      throw new RoleEffectError(`applying ${next.role}: ${failures.join('; ')}`)
    }
    log.info({ role: next.role, relay: next.relay, dht: next.dht }, 'role applied')
    return next
  }
}
