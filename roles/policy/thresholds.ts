// Every threshold of the role policy, with the reason for its value. Change them here only.

const MiB = 1024 ** 2
const GiB = 1024 ** 3

export const THRESHOLDS = {
  rhizomorph: {
    // A node on battery gives nothing it cannot take back: relaying and replication drain it.
    allowOnBattery: false,
    // A libp2p node with DHT server mode, relay and a latent spore idles near 200 MiB RSS;
    // 1 GiB leaves room for the OS and for forwarding replication stripes.
    minMemoryBytes: 1 * GiB,
    // Forwarding and serving while the machine does its own work needs a second core.
    minCores: 2,
    // The latent spore and stripe buffers live on disk.
    minDiskFreeBytes: 1 * GiB
  },
  sclerotium: {
    // Sclerotia hold the primary spore, vote in the committee and relay for everyone: they
    // need headroom on every axis.
    minMemoryBytes: 2 * GiB,
    minCores: 2,
    minDiskFreeBytes: 4 * GiB,
    // A machine already this busy would answer votes and relays late.
    maxLoadPercent: 85,
    // Below this score a capable node is better used as a rhizomorph unless the network needs it.
    minScore: 50
  },
  // Below this much free disk the node is "full": it cannot take spores or replicas at all.
  diskFullBytes: 512 * MiB,
  vmBackups: {
    // A VM backup holds a full copy of guest memory: at least a small guest plus the node.
    minMemoryBytes: 4 * GiB
  },
  score: {
    // Weights add to 100. Network and power weigh as much as compute: a sclerotium is useful
    // because others can reach it and it stays up, not because it is fast.
    cpu: 25,
    memory: 20,
    disk: 10,
    network: 30,
    power: 15,
    // Cores and clock saturate: beyond 8 cores at 3 GHz the mesh never needs more.
    saturatingCores: 8,
    saturatingMHz: 3000,
    // Memory and disk count on a log scale between these bounds (each doubling counts the same).
    memoryFloorBytes: 256 * MiB,
    memoryCeilingBytes: 64 * GiB,
    diskFloorBytes: 1 * GiB,
    diskCeilingBytes: 1024 * GiB,
    // Throughput that saturates the network share: replication stripes need ~100 Mbit/s.
    saturatingThroughputMbps: 200,
    // Load above this costs score, down to -10 at 100 %.
    busyLoadPercent: 50,
    busyPenalty: 10
  }
} as const

export type Thresholds = typeof THRESHOLDS
