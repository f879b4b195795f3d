// The daemon's side of the roles: the probe protocol and the switchable relay as libp2p
// services, the role service started once the host runs, and what the operator sees of it
// (`mycelium role`, the role fields of `status`, each peer's role in `peers`).
import { protocolPrefix, topicPrefix } from '../../membership/index.ts'
import { ApiError } from '../api/index.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import {
  createRoleService, networkProbe, probeProtocol, relaySwitch, roleMetrics,
  hardwareProfileFromEnv, roleTimingFromEnv, isRoleOverride, openLoadWindow,
  type RoleService, type RoleNode, type RoleOverride, type RelaySwitch
} from '../../roles/index.ts'

export interface RolesFeature extends DaemonFeature {
  /** the running role service (undefined before start and after stop) */
  service: () => RoleService | undefined
  /** a peer's role from its signed advertisement, when one was received */
  roleOf: (peerId: string) => string | undefined
}

export function rolesFeature (): RolesFeature {
  let service: RoleService | undefined
  let context: DaemonContext | undefined
  let override: RoleOverride = 'auto'
  // The machine's load is sampled from here, while the daemon starts libp2p, to the first role
  // decision: that decision no longer waits a quarter of a second for a sample of its own.
  const loadWindow = openLoadWindow()

  const running = (): RoleService => {
    if (service === undefined) throw new ApiError(503, 'the role of this node is still being measured; try again in a moment')
    return service
  }

  const decided = (): ReturnType<RoleService['status']> | undefined => {
    try { return service?.status() } catch { return undefined }
  }

  return {
    name: 'roles',
    service: () => service,
    roleOf: (peerId) => service?.roleOf(peerId),
    advertisedRoles: () => service?.advertisements().map(a => ({ peerId: a.peerId, role: a.role, addrs: a.addrs })) ?? [],

    services (ctx) {
      const services: Record<string, (components: any) => unknown> = {
        probe: networkProbe({ protocol: probeProtocol(protocolPrefix(ctx.network.networkId)) })
      }
      // --no-relay: this node never serves as a relay, whatever its role
      if (ctx.config.relayServer) services.relay = relaySwitch({ initialMode: 'off' })
      return services
    },

    async start (ctx) {
      context = ctx
      override = ctx.config.role ?? 'auto'
      const host = ctx.host()
      const created = createRoleService(host as unknown as RoleNode, {
        topicPrefix: topicPrefix(ctx.network.networkId),
        secretKey: ctx.secretKey,
        dataDir: ctx.home.dir,
        override,
        profile: () => hardwareProfileFromEnv(),
        timing: roleTimingFromEnv(),
        log: ctx.log,
        metrics: roleMetrics(ctx.metrics.registry),
        // only a lost kept link says a peer may have died (an on-demand link closes when idle)
        keepsLink: (peerId) => ctx.keepsLink(peerId),
        servesViewTo: (peerId) => ctx.isVerified(peerId),
        loadWindow
      })
      await created.start()
      service = created
    },

    async stop () {
      const s = service
      service = undefined
      await s?.stop()
    },

    role () {
      const status = decided()
      if (status !== undefined) return status.role
      // before the first measurement only an operator pin is known
      return override === 'auto' ? undefined : override
    },

    status () {
      const status = decided()
      if (status === undefined) return {}
      // what the host does now, read from the services themselves
      const relay = (context?.host().services.relay as RelaySwitch | undefined)?.mode ?? 'off'
      const dht = context?.host().services.dht.getMode() ?? null
      return {
        dedicated: status.dedicated,
        roleOverride: status.override,
        roleScore: status.score,
        roleSince: new Date(status.since).toISOString(),
        roleChanges: status.changes,
        roleBehaviour: { relay, dht },
        anchors: status.anchors,
        sclerotia: status.balance === undefined ? null : { count: status.balance.sclerotia, target: status.balance.target, nodes: status.balance.nodes }
      }
    },

    routes () {
      return {
        'GET /role': () => {
          const report = running().report()
          const status = running().status()
          return { ...report, override: status.override, anchors: status.anchors, behaviour: status.behaviour }
        },
        'POST /role': async ({ body }) => {
          const wanted = (body !== null && typeof body === 'object' ? body as Record<string, unknown> : {}).role
          if (!isRoleOverride(wanted)) throw new ApiError(400, 'role must be one of sclerotium, rhizomorph, hyphae, auto')
          override = wanted
          await running().setOverride(wanted)
          return running().report()
        }
      }
    }
  }
}
