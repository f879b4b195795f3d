// The slashing rules, in one place. Trust is a number in [0, 1]; every peer starts at 1.
//
//   fault        evidence (self-contained, checkable by anyone)                 trust change
//   equivocate   two different signed commitments (or reveals) in one round     set to 0, excluded at once
//   mismatch     a signed reveal that does not open the member's commitment     -0.30
//   copy         a commitment, seen after another member's reveal, that opens   -0.30
//                with that reveal's result and nonce (attested, as withholding)
//   dissent      a valid reveal of another result than the certified one        -0.20
//                (only for objective operations: deterministic on the same input)
//   withhold     committed and not revealed, or not committed, while connected  -0.05
//                (withhold and copy are attested by the observer; applied from
//                 gossip only once f+1 distinct committee members attest them).
//                Judged a grace after the certificate that follows the observed
//                latency (round-engine.ts), never against a signer; a reveal that
//                opens the member's commitment, however late, withdraws it: slow is
//                not withholding
//
// Below EXCLUSION_THRESHOLD a peer is excluded from committees. Each valid reveal that
// matches a certified result gives back RECOVERY_PER_ROUND (never above 1, never for an
// equivocator), so an occasionally unreachable member recovers and a persistent offender does not.
export type FaultReason = 'equivocate' | 'mismatch' | 'copy' | 'dissent' | 'withhold'

export const FAULT_REASONS: readonly FaultReason[] = ['equivocate', 'mismatch', 'copy', 'dissent', 'withhold']

export const TRUST_PENALTY: Readonly<Record<FaultReason, number>> = {
  equivocate: 1,
  mismatch: 0.3,
  copy: 0.3,
  dissent: 0.2,
  withhold: 0.05
}

export const INITIAL_TRUST = 1
export const EXCLUSION_THRESHOLD = 0.5
export const RECOVERY_PER_ROUND = 0.01
/** Faults that exclude at once, whatever the trust left. */
export const EXCLUDING_FAULTS: ReadonlySet<FaultReason> = new Set(['equivocate'])
