// A daemon feature is one capability (roles, spores, VMs, browser client, bridging…) plugged
// into the daemon: the libp2p services it adds, what it starts once the host runs, the
// admin API routes it answers and the fields it adds to `status`. The daemon knows features
// only through this interface, and features receive the daemon's public parts.
import type { Routes } from '../api/index.ts'
import type { EpochAnchor, MemberHost } from '../../membership/index.ts'
import type { MyceliumHost } from '../host/index.ts'
import type { Home, NetworkInfo } from '../home/index.ts'
import type { NodeMetrics } from '../metrics/index.ts'
import type { Logger } from '../log/index.ts'
import type { DaemonConfig } from './config.ts'

export interface DaemonContext {
  home: Home
  config: DaemonConfig
  network: NetworkInfo
  log: Logger
  metrics: NodeMetrics
  /** the node's Ed25519 secret key (32 bytes) for signing entries, advertisements, votes */
  secretKey: Uint8Array
  /** available from start() on */
  host: () => MyceliumHost
  /** current role of this node as the roles feature decided it */
  role: () => string
  /** members currently connected (peer id, addresses, announced role) */
  peers: () => Array<{ peerId: string, addrs: string[], role: string }>
  /** true while the peer is a member: it passed the handshake here (it may have disconnected since), its certificate has not expired and it is not revoked */
  isVerified: (peerId: string) => boolean
  /** true when the topology keeps a link to this member (the others are on-demand links) */
  keepsLink: (peerId: string) => boolean
  /** membership on this host: verified set with expiries, departures, rejections */
  membership: () => MemberHost
}

export interface DaemonFeature {
  readonly name: string
  /** libp2p services to add to the host (js-libp2p service factories), keyed by name. */
  services?: (ctx: DaemonContext) => Record<string, (components: any) => unknown>
  start?: (ctx: DaemonContext) => Promise<void>
  stop?: () => Promise<void>
  routes?: (ctx: DaemonContext) => Routes
  /** extra fields merged into `mycelium status --json` */
  status?: () => Record<string, unknown>
  /** the node's role, when this feature decides it (the roles feature) */
  role?: () => string | undefined
  /** a peer's current role, when this feature knows it better than the roster (the roles feature) */
  roleOf?: (peerId: string) => string | undefined
  /** every live member's advertised role and addresses, when this feature knows them (the roles feature) */
  advertisedRoles?: () => Array<{ peerId: string, role: string, addrs: string[] }>
  /** the certified committee of the primary spore, when this feature holds it (the spores feature) */
  committee?: () => ReadonlySet<string> | undefined
  /** true when this feature knows the peer must be refused and disconnected (revocations) */
  isRevoked?: (peerId: string) => boolean
  /** the latest certified primary epoch, which invites carry as the new node's anchor (the spores feature) */
  epochAnchor?: () => EpochAnchor | undefined
}
