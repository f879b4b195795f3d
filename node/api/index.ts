export { AdminApi } from './server.ts'
export type { Routes, ApiHandler, ApiRequest, TextRoute, StreamRoute } from './server.ts'
export { ApiClient, processAlive } from './client.ts'
export { ApiError, DaemonNotRunningError } from './errors.ts'
