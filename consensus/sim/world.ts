// What the simulator needs from the content side, injected so consensus/ keeps importing
// nothing from spores/: the first epoch, each node's epoch source (its latent entries live in
// the world), the entries nodes write and gossip, the Byzantine proposer's bad bodies, and an
// independent check of a certified epoch against the one before it, and the exclusion entries
// honest nodes write when they slash an equivocator.
import type { EpochInputSource, EpochBody, PreviousEpochFacts, CertifiedEpoch } from '../primary-epochs.ts'
import type { MessageSigner } from '../messages.ts'

/** What a Byzantine proposer writes into an epoch. */
export type BadContent = 'drop-entries' | 'capture-candidates' | 'forge-entry' | 'stale-entry' | 'future-issuedAt'

export const BAD_CONTENT: readonly BadContent[] = ['drop-entries', 'capture-candidates', 'forge-entry', 'stale-entry', 'future-issuedAt']

export interface SimWorld {
  /** The first certified epoch, naming the candidates of the first committee. */
  genesis: (candidates: string[], issuedAt: number) => { headerBytes: Uint8Array, certificate: Uint8Array, entries: Uint8Array[] }
  /** Node `node`'s epoch source; its latent entries persist across the node's restarts. */
  source: (node: number) => EpochInputSource
  /** Node `node` writes its own entries at `now`; returns the bytes it gossips to the others. */
  write: (node: number, signer: MessageSigner, now: number) => Uint8Array[]
  /** Node `node` receives an entry gossiped by another. */
  receive: (node: number, bytes: Uint8Array) => void
  /** A body breaking the rules in the way `kind` says, built on `previous`. */
  badBody: (kind: BadContent, previous: PreviousEpochFacts, self: MessageSigner, now: number, victims: readonly string[]) => Promise<EpochBody>
  /** An honest-looking body (for an equivocating proposer's second input). */
  body: (node: number, previous: PreviousEpochFacts, issuedAt: number) => Promise<EpochBody>
  /** Why a certified epoch breaks the rules against the one before it, or undefined. */
  check: (epoch: CertifiedEpoch, previous: CertifiedEpoch) => string | undefined
  /** The candidates a certified epoch names for the next committee. */
  candidates: (epoch: CertifiedEpoch) => string[]
  /**
   * Node `node` slashed `accused` for a fault that excludes at once, with these evidence bytes:
   * it writes an exclusion entry as a daemon does, and returns the bytes it gossips.
   */
  exclude: (node: number, signer: MessageSigner, accused: string, evidence: Uint8Array, now: number) => Uint8Array | undefined
}
