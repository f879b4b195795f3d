export type Role = 'sclerotium' | 'rhizomorph' | 'hyphae'
export type RoleOverride = Role | 'auto'

export const ROLES: readonly Role[] = ['hyphae', 'rhizomorph', 'sclerotium']

/** hyphae < rhizomorph < sclerotium: how much a node gives to the network. */
export function roleRank (role: Role): number {
  return ROLES.indexOf(role)
}

export function lowerRole (a: Role, b: Role): Role {
  return roleRank(a) <= roleRank(b) ? a : b
}

export function isRole (value: unknown): value is Role {
  return value === 'sclerotium' || value === 'rhizomorph' || value === 'hyphae'
}

export function isRoleOverride (value: unknown): value is RoleOverride {
  return value === 'auto' || isRole(value)
}

/** How well a node would serve as a sclerotium; promotions take `preferred` nodes first. */
export type SclerotiumFit = 'preferred' | 'possible' | 'unfit'
