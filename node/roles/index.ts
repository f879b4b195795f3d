// Roles in the daemon: the feature that runs the role service of `roles/`.
export { rolesFeature } from './roles-feature.ts'
export type { RolesFeature } from './roles-feature.ts'
