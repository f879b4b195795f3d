// Network-level balancing. Every node runs the same pure function over the same view of
// signed advertisements, so the nodes agree on who moves without talking: below target the
// best candidates promote themselves (ranked by fit, score, then peer id), above target the
// weakest dynamic sclerotia demote themselves. Dedicated and pinned nodes never move.
import type { BalanceAdvice } from '../policy/role-transition.ts'
import type { Role, SclerotiumFit } from '../policy/role.ts'

export interface BalanceOptions {
  /** Fewer sclerotia than this is urgent (a committee of 3f+1 needs them). */
  minSclerotia: number
  /** target = max(min, round(factor × √N)). */
  sqrtFactor: number
}

export const DEFAULT_BALANCE: BalanceOptions = { minSclerotia: 3, sqrtFactor: 1 }

export interface BalanceMember {
  peerId: string
  role: Role
  dedicated: boolean
  pinned: boolean
  score: number
  fit: SclerotiumFit
  /** Its hysteresis allows a role change now. */
  movable: boolean
}

export interface BalanceOutcome extends BalanceAdvice {
  nodes: number
  sclerotia: number
  target: number
}

export function sclerotiumTarget (nodes: number, options: BalanceOptions = DEFAULT_BALANCE): number {
  if (nodes <= 0) return 0
  return Math.min(nodes, Math.max(options.minSclerotia, Math.round(options.sqrtFactor * Math.sqrt(nodes))))
}

const FIT_ORDER: Record<SclerotiumFit, number> = { preferred: 0, possible: 1, unfit: 2 }

function byId (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Strongest first: preferred before possible, higher score, then lower peer id. */
export function promotionOrder (a: BalanceMember, b: BalanceMember): number {
  return FIT_ORDER[a.fit] - FIT_ORDER[b.fit] || b.score - a.score || byId(a.peerId, b.peerId)
}

export function balanceAdvice (self: string, members: BalanceMember[], options: BalanceOptions = DEFAULT_BALANCE): BalanceOutcome {
  const nodes = members.length
  const target = sclerotiumTarget(nodes, options)
  const sclerotia = members.filter(m => m.role === 'sclerotium').length
  const base = { nodes, sclerotia, target }

  if (sclerotia < target) {
    const urgent = sclerotia < Math.min(options.minSclerotia, nodes)
    const candidates = members
      .filter(m => m.role !== 'sclerotium' && !m.pinned && m.fit !== 'unfit' && (m.movable || urgent))
      .sort(promotionOrder)
    const chosen = candidates.slice(0, target - sclerotia)
    if (chosen.some(m => m.peerId === self)) {
      return { ...base, action: 'promote', urgent, reason: `${sclerotia} of ${target} sclerotia for ${nodes} nodes: promoted as one of the ${chosen.length} best candidates` }
    }
    return { ...base, action: 'hold', urgent, reason: `${sclerotia} of ${target} sclerotia for ${nodes} nodes: ${chosen.length === 0 ? 'no candidate can be promoted' : 'better candidates promote'}` }
  }
  if (sclerotia > target) {
    const demotable = members
      .filter(m => m.role === 'sclerotium' && !m.dedicated && !m.pinned && m.movable)
      .sort((a, b) => -promotionOrder(a, b))
    const chosen = demotable.slice(0, sclerotia - target)
    if (chosen.some(m => m.peerId === self)) {
      return { ...base, action: 'demote', urgent: false, reason: `${sclerotia} sclerotia for a target of ${target}: demoted as one of the ${chosen.length} weakest dynamic sclerotia` }
    }
    return { ...base, action: 'hold', urgent: false, reason: `${sclerotia} sclerotia for a target of ${target}: weaker dynamic sclerotia demote` }
  }
  return { ...base, action: 'hold', urgent: false, reason: `${sclerotia} of ${target} sclerotia for ${nodes} nodes` }
}
