// What each role does, as data: the controller applies it, `mycelium role` shows it, and the
// rest of the node (spores committee, browser client, replication) reads it.
import type { Role } from '../policy/role.ts'
import type { RelayMode } from './relay-switch.ts'

export type DhtMode = 'server' | 'client'

export interface RoleBehaviour {
  role: Role
  dedicated: boolean
  relay: RelayMode
  dht: DhtMode
  /** Holds and votes on the primary spore. */
  committee: boolean
  servesBrowserClient: boolean
  /** Forwards RAM-replication stripes. */
  replicationLink: boolean
  vmBackups: boolean
  /** Keeps the latent spore. */
  latentSpore: boolean
  /** Keeps connections to at least two sclerotia (client-only nodes). */
  keepsAnchors: boolean
}

export function behaviourOf (role: Role, dedicated: boolean, capabilities: { vmBackups: boolean }): RoleBehaviour {
  switch (role) {
    case 'sclerotium':
      return { role, dedicated, relay: 'full', dht: 'server', committee: true, servesBrowserClient: true, replicationLink: true, vmBackups: capabilities.vmBackups, latentSpore: true, keepsAnchors: false }
    case 'rhizomorph':
      return { role, dedicated: false, relay: 'limited', dht: 'server', committee: false, servesBrowserClient: false, replicationLink: true, vmBackups: capabilities.vmBackups, latentSpore: true, keepsAnchors: false }
    case 'hyphae':
      return { role, dedicated: false, relay: 'off', dht: 'client', committee: false, servesBrowserClient: false, replicationLink: false, vmBackups: false, latentSpore: false, keepsAnchors: true }
  }
}
