// Whether an exclusion entry's evidence proves that its key's peer is Byzantine. Only the
// faults that exclude at once count (consensus/fault-rules.ts EXCLUDING_FAULTS): two different
// signed votes of the accused for one round, or its signatures on two conflicting
// certificates. Both rest on the accused's own signatures alone: an honest member never signs
// them (its votes are written before they go out and kept across restarts), whatever the
// committee or round the evidence names, so no certified context is needed to believe it, and
// nobody can make such evidence against an honest member.
import { verifyEvidence, EXCLUDING_FAULTS } from '../../consensus/index.ts'

export function provesExclusion (evidence: Uint8Array, accused: string): boolean {
  try {
    const e = verifyEvidence(evidence)
    return e.accused === accused && EXCLUDING_FAULTS.has(e.reason)
  } catch {
    return false
  }
}
