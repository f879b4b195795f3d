// A circuit-relay-v2 server that can be switched at runtime: off, limited (a rhizomorph's
// few short reservations) or full (a sclerotium's). The relay server cannot be restarted
// once stopped (its shutdown signal stays aborted), so each switch builds a fresh server
// from the same components; circuits of the previous mode end with it.
import { circuitRelayServer, type CircuitRelayService, type CircuitRelayServerInit } from '@libp2p/circuit-relay-v2'
import type { Startable } from '@libp2p/interface'

export type RelayMode = 'full' | 'limited' | 'off'

export interface RelaySwitchInit {
  full?: CircuitRelayServerInit
  limited?: CircuitRelayServerInit
  /** Mode when the node starts, before any role is applied. */
  initialMode?: RelayMode
}

export const DEFAULT_RELAY_LIMITS: Record<'full' | 'limited', CircuitRelayServerInit> = {
  full: { reservations: { maxReservations: 128 } },
  // bounded reservations and bytes: a rhizomorph helps without becoming a sclerotium
  limited: { reservations: { maxReservations: 8, defaultDurationLimit: 2 * 60_000, defaultDataLimit: 16n * 1024n * 1024n } }
}

export class RelaySwitch implements Startable {
  private readonly components: unknown
  private readonly init: RelaySwitchInit
  private server?: CircuitRelayService & Startable
  private current: RelayMode = 'off'
  private desired?: RelayMode
  private running = false
  private queue: Promise<void> = Promise.resolve()

  constructor (components: unknown, init: RelaySwitchInit = {}) {
    this.components = components
    this.init = init
  }

  readonly [Symbol.toStringTag] = 'mycelium:relay-switch'

  get mode (): RelayMode {
    return this.current
  }

  async start (): Promise<void> {
    this.running = true
    // a mode set before libp2p started wins over the initial one
    await this.setMode(this.desired ?? this.init.initialMode ?? 'off')
  }

  async stop (): Promise<void> {
    const desired = this.desired
    await this.setMode('off')
    this.desired = desired
    this.running = false
  }

  /** Switches mode; calls are applied in order. */
  async setMode (mode: RelayMode): Promise<void> {
    this.desired = mode
    const next = this.queue.then(async () => { await this.apply(mode) })
    this.queue = next.catch(() => {})
    await next
  }

  private async apply (mode: RelayMode): Promise<void> {
    if (mode === this.current && (mode === 'off' || this.server !== undefined)) return
    const previous = this.server
    this.server = undefined
    this.current = 'off'
    if (previous !== undefined) await previous.stop()
    if (mode === 'off' || !this.running) return
    const init = this.init[mode] ?? DEFAULT_RELAY_LIMITS[mode]
    const server = circuitRelayServer(init)(this.components as never) as unknown as CircuitRelayService & Startable
    await server.start()
    this.server = server
    this.current = mode
  }
}

/** js-libp2p service factory, used in place of `circuitRelayServer()`. */
export function relaySwitch (init: RelaySwitchInit = {}): (components: unknown) => RelaySwitch {
  return (components) => new RelaySwitch(components, init)
}
