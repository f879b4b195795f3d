// Slashes become `trust` entries in the latent tier: a member of the current primary
// committee (which the spores let speak for trust) signs the accused's lowered trust with the
// reason and the evidence id, so every node sees the verdict with the entry that names its
// evidence (`mycelium trust evidence ID`).
import { signEntry, type Spores, type SporesNetwork } from '../../spores/index.ts'
import type { Slash } from '../../consensus/index.ts'
import type { Logger } from '../log/index.ts'

export function publishTrustEntry (spores: Spores, network: SporesNetwork, peerId: string, slash: Slash, trust: number, log: Logger): void {
  if (!spores.primary.committee().has(spores.signer.peerId)) {
    log.debug({ peerId, reason: slash.reason }, 'slash seen; this node is not in the current committee, so it writes no trust entry')
    return
  }
  const now = Date.now()
  const held = spores.tiers.latent.getById(`trust/${peerId}`)?.seq ?? 0
  const entry = signEntry(spores.signer, {
    type: 'trust',
    key: peerId,
    value: { score: Math.max(0, Math.min(1, trust)), reason: `slashed for ${slash.reason}, evidence ${slash.evidenceId}`.slice(0, 128) },
    seq: Math.max(now, held + 1),
    issuedAt: now
  })
  void spores.merge('latent', [entry])
    .then(async ([outcome]) => {
      if (outcome.status !== 'merged') {
        // e.g. a newer verdict on this peer is already held
        log.debug({ peerId, outcome: outcome.status, why: (outcome as { reason?: string }).reason }, 'trust entry not stored')
        return
      }
      await network.gossip.publish(entry)
    })
    .catch(err => { log.debug({ peerId, err: (err as Error).message }, 'trust entry not published') })
}
