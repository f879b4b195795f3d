export { Roster } from './roster.ts'
export type { RosterEntry, Presence, RosterOptions } from './roster.ts'
