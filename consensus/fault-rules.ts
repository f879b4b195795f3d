// The slashing rules, in one place. Trust is a number in [0, 1]; every peer starts at 1. Only
// faults with self-contained evidence are slashed: the accused's own signed messages, checked
// offline and against the certified chain (the committee, f and seed of the round come from
// certified epochs, never from the accuser):
//
//   fault         evidence                                                        trust change
//   equivocate    two different signed commits, reveals or proposals of the       set to 0, excluded at once
//                 accused for one round (proposals: one attempt)
//   conflict      two valid certificates for one key with different results,      set to 0, excluded at once
//                 both signed by the accused (an honest member's locks forbid it)
//   mismatch      a signed reveal that does not open the member's commitment      -0.30
//   dissent       a valid reveal of another result than the certified one        -0.20
//                 (only for objective operations: deterministic on the same input)
//   bad-proposal  the proposer's signed proposal whose content breaks the         -0.50
//                 operation's deterministic rules against the certified chain
//
// Not slashed: withholding and copying. Neither can be proven in an asynchronous network (a
// slow member looks like a withholder; who copied whom is a matter of arrival order), and
// neither pays: reveals open only after 2f+1 commits (a withheld reveal costs liveness like a
// crash, which f tolerates), and commits that arrive after the reveal phase opened are not
// counted, so a copier's vote never enters a certificate formed there.
//
// Below EXCLUSION_THRESHOLD a peer is excluded from committees. Each valid reveal that
// matches a certified result gives back RECOVERY_PER_ROUND (never above 1, never for an
// excluded peer).
export type FaultReason = 'equivocate' | 'conflict' | 'mismatch' | 'dissent' | 'bad-proposal'

export const FAULT_REASONS: readonly FaultReason[] = ['equivocate', 'conflict', 'mismatch', 'dissent', 'bad-proposal']

export const TRUST_PENALTY: Readonly<Record<FaultReason, number>> = {
  equivocate: 1,
  conflict: 1,
  mismatch: 0.3,
  dissent: 0.2,
  'bad-proposal': 0.5
}

export const INITIAL_TRUST = 1
export const EXCLUSION_THRESHOLD = 0.5
export const RECOVERY_PER_ROUND = 0.01
/** Faults that exclude at once, whatever the trust left. */
export const EXCLUDING_FAULTS: ReadonlySet<FaultReason> = new Set(['equivocate', 'conflict'])
