// What a node knows about its own machine. Every figure that could not be measured in time
// is named in `unknown`, so the policy can say so instead of guessing silently.

export type LinkType = 'wired' | 'wireless' | 'virtual' | 'unknown'

export interface NetworkInterfaceFacts {
  name: string
  type: LinkType
  /** Link speed in Mbit/s as the kernel reports it; null where it does not (Wi-Fi, virtual). */
  speedMbps: number | null
  up: boolean
  internal: boolean
}

export interface HardwareFacts {
  measuredAt: number
  cpu: {
    model: string
    cores: number
    speedMHz: number | null
    /** Busy share of all cores, 0–100. */
    loadPercent: number | null
  }
  memory: {
    totalBytes: number
    availableBytes: number
  }
  /** The filesystem holding the node's data directory. */
  disk: {
    path: string
    sizeBytes: number | null
    freeBytes: number | null
  }
  os: {
    platform: string
    distro: string
    release: string
    arch: string
    /** The host's memory page size (null: not measured, e.g. from a profile) */
    pageSizeBytes?: number | null
  }
  battery: {
    present: boolean
    charging: boolean
    percent: number | null
    /** True when the machine runs from its battery right now (no mains). */
    onBattery: boolean
  }
  /** The board's model string where this is a Raspberry Pi, otherwise null. */
  raspberryPi: string | null
  virtualization: {
    /** This machine is itself a virtual machine or container. */
    guest: boolean | null
    guestOf: string | null
    /** `/dev/kvm` opened read-write: this node can run VMs. */
    kvm: boolean
  }
  uptimeSeconds: number
  interfaces: NetworkInterfaceFacts[]
  /** Facts that could not be measured (timed out or unsupported); the policy is conservative about them. */
  unknown: string[]
  /** Name of the injected hardware profile that replaced measured facts, if any. */
  profile?: string
}

/** What the active measurements found out about this node's place in the network. */
export interface NetworkFacts {
  /** Some peer dialled one of this node's addresses back; null when no peer could be asked. */
  reachable: boolean | null
  rttMs: number | null
  throughputMbps: number | null
  /** How many peers answered. */
  peers: number
  measuredAt: number
}

export function unmeasuredNetwork (now: number): NetworkFacts {
  return { reachable: null, rttMs: null, throughputMbps: null, peers: 0, measuredAt: now }
}
