// The seam between the roles and the host: the daemon implements RoleEffects (or uses
// libp2pRoleEffects over its kad-dht and relay switch); other parts follow through onApplied.
import type { RelayMode } from './relay-switch.ts'
import type { DhtMode, RoleBehaviour } from './role-behaviour.ts'

export interface RoleEffects {
  setRelayServer: (mode: RelayMode) => void | Promise<void>
  setDhtMode: (mode: DhtMode) => void | Promise<void>
  /** Everything else that follows the role (committee, browser client, replication). */
  onApplied?: (behaviour: RoleBehaviour) => void | Promise<void>
}

export interface Libp2pRoleParts {
  /** kad-dht service (`setMode` switches server/client at runtime). */
  dht?: { setMode: (mode: DhtMode) => Promise<void> }
  relay?: { setMode: (mode: RelayMode) => Promise<void> }
  onApplied?: (behaviour: RoleBehaviour) => void | Promise<void>
}

export function libp2pRoleEffects (parts: Libp2pRoleParts): RoleEffects {
  return {
    setRelayServer: async (mode) => { await parts.relay?.setMode(mode) },
    setDhtMode: async (mode) => { await parts.dht?.setMode(mode) },
    onApplied: parts.onApplied
  }
}
