// Gossipsub scoring for the topics whose messages are validated: a member that sends
// messages its peers can prove invalid loses score with each one, and past the graylist
// threshold every peer ignores whatever it sends until the penalty decays.
//
// Without topic parameters gossipsub gives a topic validator's 'reject' no weight at all: the
// message is dropped, but the sender may go on sending forever and each message still costs
// a full validation (a spore merge, a signature check). Only the invalid-delivery term (P4)
// is used here. The mesh-delivery terms (P2, P3, P3b) reward or punish traffic volume, and
// a quiet honest member (a Pi with nothing to say, a topic with no traffic for an hour) must
// never lose score for being quiet.
//
// What counts as invalid is the validators' business: each one rejects only what it can
// prove from the message itself (a bad signature, malformed bytes) or what the sender wrote
// about itself; anything that depends on this node's view (a member it has not heard of yet,
// its clock, what it already holds) is ignored without blame, so an honest forwarder is never
// penalised (spores/latent/latent-gossip.ts).
import type { PeerScoreParams, PeerScoreThresholds, TopicScoreParams } from '@libp2p/gossipsub/score'
import { sporeProtocols } from '../../spores/index.ts'
import { consensusTopics } from '../../consensus/index.ts'
import { protocolPrefix, topicPrefix } from '../../membership/index.ts'
import { revocationTopic } from '../revocation/index.ts'

/**
 * Score below which a peer's messages are ignored outright (gossipsub's own default): with
 * weight -1 on the square of the invalid count, nine invalid messages in a row graylist a
 * peer, and it stays there while it keeps sending them.
 */
export const GOSSIP_GRAYLIST_THRESHOLD = -80
/**
 * The invalid count decays by this factor every second: a graylisted flooder is heard again
 * about 5 s after it stops, and its score is back above gossipsub's gossip threshold (-10)
 * within a minute.
 */
const INVALID_DECAY_PER_S = 0.98

const validatedTopic: TopicScoreParams = {
  topicWeight: 1,
  timeInMeshWeight: 0,
  timeInMeshQuantum: 1_000,
  timeInMeshCap: 1,
  firstMessageDeliveriesWeight: 0,
  firstMessageDeliveriesDecay: 0.5,
  firstMessageDeliveriesCap: 1,
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 1,
  meshMessageDeliveriesThreshold: 1,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 5_000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  invalidMessageDeliveriesWeight: -1,
  invalidMessageDeliveriesDecay: INVALID_DECAY_PER_S
}

/** The network's topics that have a validator able to reject. */
export function validatedTopics (networkId: string): string[] {
  const names = { protocolPrefix: protocolPrefix(networkId), topicPrefix: topicPrefix(networkId) }
  return [sporeProtocols(names).gossip, consensusTopics(names.topicPrefix).evidence, revocationTopic(networkId)]
}

export function gossipScoreParams (networkId: string): Partial<PeerScoreParams> {
  return {
    // No IP colocation penalty: gossipsub scores peers sharing an address below its graylist
    // once more than 10 do (-5 × surplus²), then ignores their messages and sends them no
    // gossip. Every peer here proved membership with a certificate of the network's root, and
    // members share an address all the time (a house behind one NAT reaching a sclerotium,
    // daemons on one machine): with 20 daemons on loopback no role advertisement got through.
    IPColocationFactorWeight: 0,
    topics: Object.fromEntries(validatedTopics(networkId).map(t => [t, validatedTopic]))
  }
}

export const gossipScoreThresholds: Partial<PeerScoreThresholds> = { graylistThreshold: GOSSIP_GRAYLIST_THRESHOLD }
