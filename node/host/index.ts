export { createHost } from './create-host.ts'
export type { MyceliumHost, HostOptions, HostServices } from './create-host.ts'
