// A slash for a fault that excludes at once (equivocation, conflicting certificates) becomes an
// `exclusion` entry carrying the evidence: a proposer puts it in the next epoch, and certifying
// that epoch takes the accused out of every later committee (spores/primary/epoch-rules.ts
// nextCandidates). Any node may write one, since the evidence is the accused's own signatures;
// one already held for the peer (from this node or another) is enough.
import { EXCLUDING_FAULTS, type Slash } from '../../consensus/index.ts'
import { MAX_EXCLUSION_EVIDENCE_BYTES, type Spores, type SporesNetwork } from '../../spores/index.ts'
import { publishEntry } from '../spores/index.ts'
import type { Logger } from '../log/index.ts'

export function publishExclusionEntry (spores: Spores, network: SporesNetwork, peerId: string, slash: Slash, evidence: Uint8Array | undefined, log: Logger): void {
  if (!EXCLUDING_FAULTS.has(slash.reason) || evidence === undefined) return
  if (spores.tiers.latent.get('exclusion', peerId) !== undefined || spores.tiers.primary.get('exclusion', peerId) !== undefined) return
  if (evidence.length > MAX_EXCLUSION_EVIDENCE_BYTES) {
    log.warn({ peerId, reason: slash.reason, bytes: evidence.length }, 'evidence too large for an exclusion entry; the peer is excluded by this node only')
    return
  }
  publishEntry(spores, network, spores.signer, { type: 'exclusion', key: peerId, value: { evidence } })
    .then(() => { log.warn({ peerId, reason: slash.reason, evidence: slash.evidenceId }, 'exclusion entry written: the next certified epoch takes this peer out of the committees') })
    .catch((err: Error) => { log.debug({ peerId, err: err.message }, 'exclusion entry not published') })
}
