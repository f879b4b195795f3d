// RAM replication: the public face of this folder.
export type { Checkpoint, VcpuState, DirtyPage, ReplicatedGuest } from './checkpoint.ts'

// Replication half: wire format, links and forwarding, backups, policy, the primary's engine.
export * from './transport/index.ts'
export * from './backup/index.ts'
export * from './policy/index.ts'
export * from './replication/index.ts'

// VMM half: KVM binding and capability check, the minimal VMM with dirty-page tracking, the guest workload.
export * from './kvm/index.ts'
export * from './vmm/index.ts'
export * from './guest/index.ts'

// The interpreted engine's core: the x86-64 subset the guest uses, its page tables, an exact dirty log.
export * from './interpreter/index.ts'
