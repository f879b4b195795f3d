// RAM replication: the public face of this folder.
export type { Checkpoint, VcpuState, DirtyPage, ReplicatedGuest } from './checkpoint.ts'

// Replication half: wire format, links and forwarding, backups, policy, the primary's engine.
export * from './transport/index.ts'
export * from './backup/index.ts'
export * from './policy/index.ts'
export * from './replication/index.ts'
