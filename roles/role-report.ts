// The operator's view of a role decision: what `mycelium role --json` prints.
import type { HardwareFacts, NetworkFacts } from './probe/hardware-facts.ts'
import type { Role } from './policy/role.ts'
import type { RoleDecision } from './policy/role-decision.ts'
import { decideRole } from './policy/role-decision.ts'
import { measureHardware, profiledNetwork, type HardwareProfile } from './probe/hardware-profile.ts'
import { unmeasuredNetwork } from './probe/hardware-facts.ts'
import type { RoleOverride } from './policy/role.ts'
import type { Thresholds } from './policy/thresholds.ts'

export interface RoleReport {
  role: Role
  dedicated: boolean
  score: number
  reasons: string[]
  measuredAt: string
  hardware: {
    cpuCores: number
    cpuModel: string
    memTotalBytes: number
    memAvailableBytes: number
    diskFreeBytes: number | null
    arch: string
    /** the host's memory page size, null when not measured */
    pageSizeBytes: number | null
    onBattery: boolean
    kvm: boolean
    raspberryPi: string | null
    profile?: string
  }
  network: {
    reachable: boolean | null
    rttMs?: number
    throughputMbps?: number
  }
  capabilities: RoleDecision['capabilities']
  /** Present when a running node reports: how its role came about in the network. */
  running?: {
    since: string
    changes: number
    nodes: number
    sclerotia: number
    target: number
  }
}

export function roleReport (facts: HardwareFacts, network: NetworkFacts, decision: RoleDecision, current?: { role: Role, dedicated: boolean, reasons: string[] }): RoleReport {
  return {
    role: current?.role ?? decision.role,
    dedicated: current?.dedicated ?? decision.dedicated,
    score: decision.score,
    reasons: current === undefined ? decision.reasons : [...current.reasons, ...decision.reasons],
    measuredAt: new Date(decision.measuredAt).toISOString(),
    hardware: {
      cpuCores: facts.cpu.cores,
      cpuModel: facts.cpu.model,
      memTotalBytes: facts.memory.totalBytes,
      memAvailableBytes: facts.memory.availableBytes,
      diskFreeBytes: facts.disk.freeBytes,
      arch: facts.os.arch,
      pageSizeBytes: facts.os.pageSizeBytes ?? null,
      onBattery: facts.battery.onBattery,
      kvm: facts.virtualization.kvm,
      raspberryPi: facts.raspberryPi,
      ...(facts.profile !== undefined ? { profile: facts.profile } : {})
    },
    network: {
      reachable: network.reachable,
      ...(network.rttMs !== null ? { rttMs: network.rttMs } : {}),
      ...(network.throughputMbps !== null ? { throughputMbps: network.throughputMbps } : {})
    },
    capabilities: decision.capabilities
  }
}

export interface AssessRoleOptions {
  dataDir: string
  override?: RoleOverride
  profile?: HardwareProfile
  timeoutMs?: number
  thresholds?: Thresholds
  signal?: AbortSignal
}

/**
 * The decision this machine would take, measured now without a running node (so without
 * network measurements: reachability is reported as unknown).
 */
export async function assessRole (options: AssessRoleOptions): Promise<RoleReport> {
  const facts = await measureHardware({ dataDir: options.dataDir, profile: options.profile, timeoutMs: options.timeoutMs, signal: options.signal })
  const network = profiledNetwork(unmeasuredNetwork(facts.measuredAt), options.profile)
  const decision = decideRole(facts, network, { override: options.override, thresholds: options.thresholds })
  return roleReport(facts, network, decision)
}
