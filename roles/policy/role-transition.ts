// Hysteresis: a node changes role at most once per interval, so noisy measurements or a
// wavering network view cannot make it flap. Three things bypass the interval because
// waiting would be wrong: an operator pin, a change of a hard constraint (battery
// unplugged or plugged in, disk full) and an urgent promotion (the network has fewer
// sclerotia than its minimum, so its committee and relays are at risk).
import type { RoleDecision } from './role-decision.ts'
import { roleRank, type Role, type RoleOverride } from './role.ts'

export const DEFAULT_HYSTERESIS_MS = 5 * 60_000

export interface RoleState {
  role: Role
  dedicated: boolean
  override: RoleOverride
  hardCeiling: Role
  /** Since when the node holds this role. */
  since: number
  /** When the role last changed; null while the node still holds the role it started with. */
  changedAt: number | null
  changes: number
}

export interface BalanceAdvice {
  action: 'promote' | 'demote' | 'hold'
  /** The network is below its minimum number of sclerotia. */
  urgent: boolean
  reason: string
}

export const HOLD: BalanceAdvice = { action: 'hold', urgent: false, reason: 'no balancing advice' }

export interface RoleTransition {
  state: RoleState
  changed: boolean
  reasons: string[]
}

/** The hysteresis interval has passed (or the node never changed role). */
export function canChangeRole (state: RoleState, now: number, hysteresisMs: number): boolean {
  return state.changedAt === null || now - state.changedAt >= hysteresisMs
}

function wantedRole (current: RoleState | undefined, decision: RoleDecision, advice: BalanceAdvice): { role: Role, dedicated: boolean } {
  if (decision.override !== 'auto') return { role: decision.override, dedicated: decision.override === 'sclerotium' }
  // an automatic node starts below sclerotium; only the network's balancing promotes it
  const base: Role = decision.ceiling === 'sclerotium' ? 'rhizomorph' : decision.ceiling
  if (decision.sclerotiumFit === 'unfit') return { role: base, dedicated: false }
  if (advice.action === 'promote') return { role: 'sclerotium', dedicated: false }
  if (current?.role === 'sclerotium' && current.override === 'auto' && advice.action !== 'demote') return { role: 'sclerotium', dedicated: false }
  return { role: base, dedicated: false }
}

export function nextRoleState (current: RoleState | undefined, decision: RoleDecision, advice: BalanceAdvice, now: number, hysteresisMs = DEFAULT_HYSTERESIS_MS): RoleTransition {
  const want = wantedRole(current, decision, advice)
  if (current === undefined) {
    return {
      state: { ...want, override: decision.override, hardCeiling: decision.hardCeiling, since: now, changedAt: null, changes: 0 },
      changed: true,
      reasons: [`starts as ${want.role}`]
    }
  }
  const same = want.role === current.role && want.dedicated === current.dedicated
  if (same) {
    return { state: { ...current, override: decision.override, hardCeiling: decision.hardCeiling }, changed: false, reasons: [] }
  }
  const bypass: string[] = []
  if (current.override !== decision.override) bypass.push(`operator set ${decision.override}`)
  if (current.hardCeiling !== decision.hardCeiling) bypass.push(`hard constraint changed (allows at most ${decision.hardCeiling}, was ${current.hardCeiling})`)
  if (decision.override === 'auto' && roleRank(current.role) > roleRank(decision.hardCeiling)) bypass.push(`${current.role} exceeds what the hardware allows`)
  if (advice.action === 'promote' && advice.urgent && want.role === 'sclerotium') bypass.push('the network is below its minimum of sclerotia')

  if (bypass.length === 0 && !canChangeRole(current, now, hysteresisMs)) {
    const until = new Date((current.changedAt ?? now) + hysteresisMs).toISOString()
    return { state: current, changed: false, reasons: [`stays ${current.role}: hysteresis holds role changes until ${until} (wanted ${want.role})`] }
  }
  const why = advice.action !== 'hold' && decision.override === 'auto' && (want.role === 'sclerotium' || current.role === 'sclerotium') ? [advice.reason] : []
  return {
    state: { ...want, override: decision.override, hardCeiling: decision.hardCeiling, since: now, changedAt: now, changes: current.changes + 1 },
    changed: true,
    reasons: [`${current.role}${current.dedicated ? ' (dedicated)' : ''} → ${want.role}${want.dedicated ? ' (dedicated)' : ''}`, ...bypass, ...why]
  }
}
