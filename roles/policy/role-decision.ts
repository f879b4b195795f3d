// The scoring policy: measured facts in, a role with its reasons out. Pure: the same facts
// always give the same decision, so a node can explain itself and tests can pin behaviour.
import type { HardwareFacts, NetworkFacts } from '../probe/hardware-facts.ts'
import { THRESHOLDS, type Thresholds } from './thresholds.ts'
import { roleRank, type Role, type RoleOverride, type SclerotiumFit } from './role.ts'

export interface RoleDecision {
  role: Role
  /** 0–100: how much this node can give the network; ranks promotion candidates. */
  score: number
  reasons: string[]
  measuredAt: number
  /** Pinned sclerotium: never demoted by balancing. */
  dedicated: boolean
  override: RoleOverride
  /** Highest role every constraint allows. */
  ceiling: Role
  /** Highest role the hard constraints (power, memory, cores, disk) allow; a change of it bypasses hysteresis. */
  hardCeiling: Role
  sclerotiumFit: SclerotiumFit
  capabilities: {
    /** Can host a VM backup (KVM usable and memory for a guest copy). */
    vmBackups: boolean
    /** Can forward RAM-replication stripes. */
    replicationLink: boolean
  }
}

const GiB = 1024 ** 3

function clamp01 (x: number): number {
  return Math.max(0, Math.min(1, x))
}

function logShare (value: number, floor: number, ceiling: number): number {
  if (value <= floor) return 0
  return clamp01(Math.log2(value / floor) / Math.log2(ceiling / floor))
}

function gib (bytes: number): string {
  return `${(bytes / GiB).toFixed(bytes < 10 * GiB ? 1 : 0)} GiB`
}

function bestLink (facts: HardwareFacts): { type: string, speedMbps: number | null } | undefined {
  const external = facts.interfaces.filter(i => i.up && !i.internal)
  const order = ['wired', 'wireless', 'unknown', 'virtual']
  external.sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type) || (b.speedMbps ?? 0) - (a.speedMbps ?? 0))
  return external[0]
}

interface Scored { score: number, notes: string[] }

function scoreOf (facts: HardwareFacts, network: NetworkFacts, t: Thresholds): Scored {
  const s = t.score
  const notes: string[] = []
  const cores = clamp01(facts.cpu.cores / s.saturatingCores)
  const speed = facts.cpu.speedMHz === null ? 0.5 : clamp01(facts.cpu.speedMHz / s.saturatingMHz)
  const cpu = s.cpu * (0.6 * cores + 0.4 * speed)
  const memory = s.memory * logShare(facts.memory.totalBytes, s.memoryFloorBytes, s.memoryCeilingBytes)
  const disk = s.disk * (facts.disk.freeBytes === null ? 0.3 : logShare(facts.disk.freeBytes, s.diskFloorBytes, s.diskCeilingBytes))

  // network: 40 % reachability, 35 % link, 25 % measured throughput
  const reach = network.reachable === true ? 1 : network.reachable === null ? 0.5 : 0
  const link = bestLink(facts)
  let linkShare = 0.4
  if (link?.type === 'wired') linkShare = link.speedMbps === null || link.speedMbps >= 1000 ? 1 : link.speedMbps >= 100 ? 0.7 : 0.4
  else if (link?.type === 'wireless' || link?.type === 'virtual') linkShare = 0.5
  const tput = network.throughputMbps === null ? 0.5 : clamp01(network.throughputMbps / s.saturatingThroughputMbps)
  const net = s.network * (0.4 * reach + 0.35 * linkShare + 0.25 * tput)
  if (link !== undefined) notes.push(`${link.type} link${link.speedMbps !== null ? ` at ${link.speedMbps} Mbit/s` : ''}`)

  const power = facts.battery.onBattery ? 0 : facts.battery.present ? s.power * 0.45 : s.power
  let busy = 0
  if (facts.cpu.loadPercent !== null && facts.cpu.loadPercent > s.busyLoadPercent) {
    busy = s.busyPenalty * clamp01((facts.cpu.loadPercent - s.busyLoadPercent) / (100 - s.busyLoadPercent))
    notes.push(`busy (${Math.round(facts.cpu.loadPercent)} % load) costs ${busy.toFixed(0)} points`)
  }
  const score = Math.max(0, Math.min(100, Math.round(cpu + memory + disk + net + power - busy)))
  return { score, notes }
}

interface Constraint { hard: boolean, failed: boolean, reason: string }

function constraintsFor (facts: HardwareFacts, network: NetworkFacts, limits: { minMemoryBytes: number, minCores: number, minDiskFreeBytes: number }, t: Thresholds, label: string): Constraint[] {
  const free = facts.disk.freeBytes
  return [
    { hard: true, failed: facts.battery.onBattery, reason: `on battery → not ${label}` },
    { hard: true, failed: facts.memory.totalBytes < limits.minMemoryBytes, reason: `${gib(facts.memory.totalBytes)} memory < ${gib(limits.minMemoryBytes)} → not ${label}` },
    { hard: true, failed: facts.cpu.cores < limits.minCores, reason: `${facts.cpu.cores} core(s) < ${limits.minCores} → not ${label}` },
    { hard: true, failed: free !== null && free < t.diskFullBytes, reason: `disk full (${gib(free ?? 0)} free) → not ${label}` },
    { hard: true, failed: free !== null && free >= t.diskFullBytes && free < limits.minDiskFreeBytes, reason: `${gib(free ?? 0)} disk free < ${gib(limits.minDiskFreeBytes)} → not ${label}` },
    { hard: false, failed: network.reachable === false, reason: `not reachable from outside → not ${label}` }
  ]
}

export interface DecideRoleOptions {
  override?: RoleOverride
  thresholds?: Thresholds
}

export function decideRole (facts: HardwareFacts, network: NetworkFacts, options: DecideRoleOptions = {}): RoleDecision {
  const t = options.thresholds ?? THRESHOLDS
  const override = options.override ?? 'auto'
  const reasons: string[] = []
  const { score, notes } = scoreOf(facts, network, t)

  const rhizo = constraintsFor(facts, network, t.rhizomorph, t, 'rhizomorph')
  const scler = constraintsFor(facts, network, t.sclerotium, t, 'sclerotium')
  // Load ranks nodes, it does not disqualify them: when every machine of a network is equally
  // busy the network must still keep its backbone, so a busy node is only a weaker candidate.
  const busy = facts.cpu.loadPercent !== null && facts.cpu.loadPercent > t.sclerotium.maxLoadPercent
  const ok = (cs: Constraint[], hardOnly: boolean): boolean => cs.every(c => !c.failed || (hardOnly && !c.hard))
  const ceilingOf = (hardOnly: boolean): Role => ok(scler, hardOnly) ? 'sclerotium' : ok(rhizo, hardOnly) ? 'rhizomorph' : 'hyphae'
  const ceiling = ceilingOf(false)
  const hardCeiling = ceilingOf(true)

  let fit: SclerotiumFit = 'unfit'
  if (ceiling === 'sclerotium') {
    fit = 'preferred'
    if (facts.battery.present) {
      fit = 'possible'
      reasons.push('has a battery (may be unplugged) → sclerotium only when the network needs one')
    } else if (busy) {
      fit = 'possible'
      reasons.push(`load ${Math.round(facts.cpu.loadPercent ?? 0)} % > ${t.sclerotium.maxLoadPercent} % → sclerotium only when the network needs one`)
    } else if (score < t.sclerotium.minScore) {
      fit = 'possible'
      reasons.push(`score ${score} < ${t.sclerotium.minScore} → sclerotium only when the network needs one`)
    }
  }

  // the first failed constraint of the lowest role that fails explains the ceiling
  const failedRhizo = rhizo.filter(c => c.failed)
  const failedScler = scler.filter(c => c.failed && !failedRhizo.some(r => r.reason.replace('rhizomorph', 'sclerotium') === c.reason))
  for (const c of failedRhizo) reasons.push(c.reason.replace('not rhizomorph', 'hyphae'))
  if (failedRhizo.length === 0) for (const c of failedScler) reasons.push(c.reason)
  if (facts.battery.onBattery) reasons.push(`battery at ${facts.battery.percent ?? '?'} %`)
  else reasons.push(facts.battery.present ? 'mains power (battery present)' : 'mains power')
  if (network.reachable === null) reasons.push('reachability not measured yet (no peer to dial back)')
  else if (network.reachable) reasons.push('reachable from outside')
  reasons.push(...notes)

  // vmBackups: backups of VMs on the KVM engine; every node can hold interpreted ones (the
  // placement asks each node what it can resume, ram-replication/backup/replica-capability.ts)
  const vmBackups = facts.virtualization.kvm && facts.memory.totalBytes >= t.vmBackups.minMemoryBytes && roleRank(ceiling) >= roleRank('rhizomorph')
  if (vmBackups) reasons.push('KVM available → can host VM backups on both engines')
  else if (!facts.virtualization.kvm) reasons.push('no usable /dev/kvm → hosts VM backups on the interpreted engine only')
  for (const f of facts.unknown) reasons.push(`${f} unknown (probe timed out or unsupported)`)
  if (facts.profile !== undefined) reasons.push(`hardware profile "${facts.profile}" replaces measured facts`)

  let role: Role
  if (override !== 'auto') {
    role = override
    reasons.unshift(`operator pinned ${override}${roleRank(override) > roleRank(ceiling) ? ` (the policy alone would allow at most ${ceiling})` : ''}`)
  } else {
    role = fit === 'preferred' ? 'sclerotium' : roleRank(ceiling) >= roleRank('rhizomorph') ? 'rhizomorph' : 'hyphae'
    reasons.unshift(`${role} (score ${score})${fit === 'preferred' ? ': the network balances how many sclerotia it keeps' : ''}`)
  }

  return {
    role,
    score,
    reasons,
    measuredAt: Math.max(facts.measuredAt, network.measuredAt),
    dedicated: override === 'sclerotium',
    override,
    ceiling,
    hardCeiling,
    sclerotiumFit: override === 'auto' ? fit : 'unfit',
    capabilities: { vmBackups, replicationLink: roleRank(role) >= roleRank('rhizomorph') }
  }
}
