// Daemon settings: CLI flags over embedded defaults. Defaults make `mycelium start` work on
// an empty home with no other set-up.
import type { RoleOverride } from '../../roles/index.ts'
export interface DaemonConfig {
  homeDir: string
  listen: string[]
  bootstrap: string[]
  apiPort: number
  relayServer: boolean
  /** operator's role choice (`--role`); auto lets the node decide from its hardware and the network */
  role?: RoleOverride
  /**
   * Where the public HTTP server of the browser client listens (only while the node is a
   * sclerotium): `off`, or a host and a port; no port = DEFAULT_HTTP_PORT, or any free port
   * when that one is taken. Undefined = all interfaces, default port.
   */
  httpListen?: 'off' | { host: string, port?: number }
  /** `--label KEY=VALUE`: what this node offers applications' placement (zone, hardware, …) */
  labels?: Record<string, string>
  /** Name of the personal network created when the home has none. */
  defaultNetworkName: string
}

export const DEFAULT_API_PORT = 7777
export const DEFAULT_HTTP_PORT = 7780
export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/7700', '/ip4/0.0.0.0/tcp/7701/ws', '/webrtc']
