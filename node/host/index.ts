export { createHost, MAX_CONNECTIONS } from './create-host.ts'
export type { MyceliumHost, HostOptions, HostServices } from './create-host.ts'
export { GOSSIP_GRAYLIST_THRESHOLD, validatedTopics } from './gossip-score.ts'
