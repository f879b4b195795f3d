export { Daemon, DaemonAlreadyRunningError, ListenError } from './daemon.ts'
export type { PeerView, RejectedConnection } from './daemon.ts'
export { DEFAULT_API_PORT, DEFAULT_LISTEN } from './config.ts'
export type { DaemonConfig } from './config.ts'
