// Prometheus metrics of the role: which role, how often it changed, the score, and the
// network's sclerotium count against its target as this node sees it.
import { Counter, Gauge, type Registry } from 'prom-client'
import { ROLES, type Role } from './policy/role.ts'

export interface RoleMetrics {
  setRole: (role: Role) => void
  roleChanged: (from: Role, to: Role) => void
  setScore: (score: number) => void
  setBalance?: (nodes: number, sclerotia: number, target: number) => void
}

export function roleMetrics (registry: Registry): RoleMetrics {
  const role = new Gauge({ name: 'mycelium_role', help: 'Current role of this node (1 for the role it holds)', labelNames: ['role'], registers: [registry] })
  const changes = new Counter({ name: 'mycelium_role_changes_total', help: 'Role changes of this node', labelNames: ['from', 'to'], registers: [registry] })
  const score = new Gauge({ name: 'mycelium_role_score', help: 'Role policy score, 0-100', registers: [registry] })
  const nodes = new Gauge({ name: 'mycelium_role_view_nodes', help: 'Nodes in this node\'s role view, itself included', registers: [registry] })
  const sclerotia = new Gauge({ name: 'mycelium_role_view_sclerotia', help: 'Sclerotia in this node\'s role view', registers: [registry] })
  const target = new Gauge({ name: 'mycelium_role_view_sclerotia_target', help: 'Target number of sclerotia for the nodes in view', registers: [registry] })
  return {
    setRole: (current) => { for (const r of ROLES) role.set({ role: r }, r === current ? 1 : 0) },
    roleChanged: (from, to) => { changes.inc({ from, to }) },
    setScore: (s) => { score.set(s) },
    setBalance: (n, s, t) => { nodes.set(n); sclerotia.set(s); target.set(t) }
  }
}
