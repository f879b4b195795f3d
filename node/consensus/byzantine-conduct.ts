// Byzantine behaviours a daemon can be made to play for fault drills and the harness tests
// (`mycelium start --bft-conduct NAME[,NAME]`, hidden from help). Nothing here runs unless the
// flag names it. Two kinds:
//   member conducts (consensus/conduct.ts)  how it commits and reveals: dissent, withhold,
//                                            silent, equivocate, copy, mismatch
//   bad-leader                               each epoch it proposes breaks a content rule, in
//                                            turn: drops the previous entries, names itself the
//                                            only candidate, writes another member's node entry,
//                                            dates the epoch an hour ahead
//   forge-evidence                           answers every proposal it sees with forged
//                                            evidence against its proposer (the honest proposal
//                                            called bad; a committee of its own making)
import { signEntry, decodeEpochEntries, type Signer } from '../../spores/index.ts'
import {
  buildEvidence, consensusTopics, decodeMessage,
  type ConsensusPubSub, type EpochBody, type PreviousEpochFacts, type ProposalBody, type Signed
} from '../../consensus/index.ts'

export const LEADER_CONDUCTS = ['bad-leader', 'forge-evidence'] as const
export type LeaderConduct = typeof LEADER_CONDUCTS[number]

const BAD_KINDS = ['drop-entries', 'capture-candidates', 'forge-entry', 'future-issuedAt'] as const

/** The proposal tamperer of a bad leader: each call breaks the next rule in turn. */
export function badLeader (self: Signer): (body: EpochBody, previous: PreviousEpochFacts) => EpochBody {
  let turn = 0
  return (body, previous) => {
    const kind = BAD_KINDS[turn++ % BAD_KINDS.length]
    switch (kind) {
      case 'drop-entries':
        return { ...body, entries: [], candidates: [...previous.candidates].sort() }
      case 'capture-candidates':
        return { ...body, candidates: [self.peerId] }
      case 'future-issuedAt':
        return { ...body, issuedAt: body.issuedAt + 3_600_000 }
      case 'forge-entry': {
        const victim = previous.candidates.find(p => p !== self.peerId) ?? self.peerId
        const forged = signEntry(self, { type: 'node', key: victim, value: { addrs: [], role: 'hyphae', hardware: {} }, seq: Number.MAX_SAFE_INTEGER, issuedAt: body.issuedAt })
        const rest = decodeEpochEntries(body).filter(e => !(e.type === 'node' && e.key === victim))
        return { ...body, entries: [...rest.map(e => e.bytes), forged.bytes] }
      }
    }
  }
}

/** Answers every other member's proposal with forged evidence against it; returns the stop. */
export function forgeEvidence (pubsub: ConsensusPubSub, topicPrefix: string, self: string): () => void {
  const topics = consensusTopics(topicPrefix)
  return pubsub.subscribe(topics.rounds, (data) => {
    let m: Signed
    try {
      m = decodeMessage(data)
    } catch {
      return
    }
    if (m.body.t !== 'proposal' || m.body.from === self) return
    const p = m as Signed<ProposalBody>
    const forgeries = [
      buildEvidence('bad-proposal', p.body.from, p.body.header, [p]),
      buildEvidence('bad-proposal', p.body.from, { ...p.body.header, committee: [p.body.from], f: 0 }, [p])
    ]
    for (const f of forgeries) void pubsub.publish(topics.evidence, f.bytes).catch(() => undefined)
  })
}
