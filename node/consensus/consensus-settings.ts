// Consensus settings. `mycelium start --epoch-interval-s N`, `--bft-f N` and the test-only
// `--bft-conduct` put them in the environment, so the daemon and its features read one place.
import type { ConductName } from '../../consensus/index.ts'
import { LEADER_CONDUCTS, type LeaderConduct } from './byzantine-conduct.ts'

export const EPOCH_INTERVAL_ENV = 'MYCELIUM_EPOCH_INTERVAL_S'
export const BFT_F_ENV = 'MYCELIUM_BFT_F'
export const BFT_CONDUCT_ENV = 'MYCELIUM_BFT_CONDUCT'
export const BFT_COMMITTEE_ENV = 'MYCELIUM_BFT_COMMITTEE'

export const DEFAULT_EPOCH_INTERVAL_S = 30
export const DEFAULT_F = 1
export const MEMBER_CONDUCTS: readonly ConductName[] = ['honest', 'dissent', 'withhold', 'equivocate', 'copy', 'mismatch', 'silent']
export const CONDUCTS: ReadonlyArray<ConductName | LeaderConduct> = [...MEMBER_CONDUCTS, ...LEADER_CONDUCTS]

export class ConsensusSettingsError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConsensusSettingsError'
  }
}

export interface ConsensusSettings {
  intervalMs: number
  f: number
  /** Committee size, at least 3f+1 (default 3f+1). */
  committeeSize: number
  /** How this node votes (honest unless the test flag says otherwise). */
  conduct: ConductName
  /** Byzantine proposer behaviours the test flag adds. */
  leader: LeaderConduct[]
}

function positive (name: string, raw: string | undefined, fallback: number, integer: boolean): number {
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new ConsensusSettingsError(`${name} must be a positive ${integer ? 'integer' : 'number'} (got "${raw}")`)
  return n
}

export function consensusSettingsFromEnv (env: NodeJS.ProcessEnv = process.env): ConsensusSettings {
  const interval = positive('--epoch-interval-s', env[EPOCH_INTERVAL_ENV], DEFAULT_EPOCH_INTERVAL_S, false)
  if (interval < 1) throw new ConsensusSettingsError(`--epoch-interval-s must be at least 1 (got "${env[EPOCH_INTERVAL_ENV]}")`)
  const f = positive('--bft-f', env[BFT_F_ENV], DEFAULT_F, true)
  if (f > 21) throw new ConsensusSettingsError(`--bft-f must be at most 21 (committees hold at most 64 members; got ${f})`)
  const committeeSize = positive('--bft-committee', env[BFT_COMMITTEE_ENV], 3 * f + 1, true)
  if (committeeSize < 3 * f + 1 || committeeSize > 64) throw new ConsensusSettingsError(`--bft-committee must be from 3f+1 = ${3 * f + 1} to 64 (got ${committeeSize})`)
  const names = (env[BFT_CONDUCT_ENV] ?? 'honest').split(',').filter(n => n !== '')
  const unknown = names.find(n => !(CONDUCTS as readonly string[]).includes(n))
  if (unknown !== undefined) throw new ConsensusSettingsError(`--bft-conduct takes one or more of ${CONDUCTS.join(', ')}, comma-separated (got "${unknown.slice(0, 40)}")`)
  const members = names.filter((n): n is ConductName => (MEMBER_CONDUCTS as readonly string[]).includes(n))
  if (members.length > 1) throw new ConsensusSettingsError(`--bft-conduct takes at most one way of voting (got ${members.join(', ')})`)
  const leader = names.filter((n): n is LeaderConduct => (LEADER_CONDUCTS as readonly string[]).includes(n))
  return { intervalMs: Math.round(interval * 1000), f, committeeSize, conduct: members[0] ?? 'honest', leader }
}
