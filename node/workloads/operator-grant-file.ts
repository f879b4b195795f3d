// The operator grant this node holds (<home>/operator-grant), stored by `mycelium app use-grant`.
import { readFileSync } from 'node:fs'
import { writeFileAtomic } from '../home/index.ts'
import type { Home } from '../home/index.ts'
import { decodeOperatorGrantToken, operatorGrantToken, decodeOperatorGrant } from '../../membership/index.ts'

const FILE = 'operator-grant'

export function loadOperatorGrant (home: Home): Uint8Array | undefined {
  try {
    return decodeOperatorGrantToken(readFileSync(home.path(FILE), 'utf8'))
  } catch {
    return undefined
  }
}

/** Checks the token's form and keeps it; whether it admits this node is checked at each use. */
export function saveOperatorGrant (home: Home, token: string): void {
  const bytes = decodeOperatorGrantToken(token)
  writeFileAtomic(home.path(FILE), operatorGrantToken(decodeOperatorGrant(bytes)) + '\n', 0o600)
}
