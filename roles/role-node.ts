// The one call the daemon makes once its libp2p node has started: the role service wired to
// the node's gossipsub, probe, kad-dht and relay switch.
import type { RoleBehaviour, DhtMode } from './behaviour/role-behaviour.ts'
import type { RelayMode } from './behaviour/relay-switch.ts'
import { libp2pRoleEffects } from './behaviour/role-effects.ts'
import type { NetworkProbe } from './measure/network-probe.ts'
import type { RoleHost, RolePubsub } from './role-host.ts'
import { RoleService, type RoleServiceOptions } from './role-service.ts'

export interface RoleNode extends RoleHost {
  services: {
    pubsub: RolePubsub
    probe?: NetworkProbe
    dht?: { setMode: (mode: DhtMode) => Promise<void> }
    relay?: { setMode: (mode: RelayMode) => Promise<void> }
  }
}

export interface CreateRoleServiceOptions extends Omit<RoleServiceOptions, 'host' | 'pubsub' | 'probe' | 'effects' | 'topic'> {
  /** The network's topic prefix, `mycelium/<networkId>`. */
  topicPrefix: string
  /** Everything else that follows the role (spores committee, browser client, replication). */
  onApplied?: (behaviour: RoleBehaviour) => void | Promise<void>
}

/** Protocol id of the probe protocol under a network's protocol prefix (`/mycelium/<networkId>`). */
export function probeProtocol (protocolPrefix: string): string {
  return `${protocolPrefix}/probe/1.0.0`
}

/** Gossip topic of role advertisements under a network's topic prefix (`mycelium/<networkId>`). */
export function rolesTopic (topicPrefix: string): string {
  return `${topicPrefix}/roles/1`
}

export function createRoleService (node: RoleNode, options: CreateRoleServiceOptions): RoleService {
  const { topicPrefix, onApplied, ...rest } = options
  return new RoleService({
    ...rest,
    host: node,
    pubsub: node.services.pubsub,
    probe: node.services.probe,
    topic: rolesTopic(topicPrefix),
    effects: libp2pRoleEffects({ dht: node.services.dht, relay: node.services.relay, onApplied })
  })
}
