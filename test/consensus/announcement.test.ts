// The announcement of a certified result (consensus/announcement.ts): from the proposer (and
// from the first signer of a certificate that lacks the proposer's vote), not from every member
// whose vote sorted first; a node outside the committee takes it and acts on the certificate; a
// member that formed the certificate itself drops a copy without relaying it (gossip's "ignore").
import { describe, expect, it } from 'vitest'
import { randomSecretKey, sha256 } from '../../crypto/index.ts'
import { signerOf } from '../../spores/index.ts'
import { RoundEngine, consensusTopics, selectCommittee, type ConsensusPubSub, type Operation, type MessageVerdict } from '../../consensus/index.ts'

const PREFIX = 'mycelium/test-announce'
const TOPICS = consensusTopics(PREFIX)
const SEED = new Uint8Array(32)

interface BusNode {
  id: string
  handlers: Map<string, Set<(data: Uint8Array) => void>>
  judges: Map<string, (data: Uint8Array) => MessageVerdict>
  verdicts: MessageVerdict[]
}

/**
 * A pubsub among in-process nodes that judges each message before delivering it, as gossip does.
 * Round messages reach only the committee, as the daemon's direct streams carry them.
 */
function bus (announcers: string[], committee: string[]): { join: (id: string) => ConsensusPubSub & { node: BusNode } } {
  const nodes: BusNode[] = []
  return {
    join (id) {
      const node: BusNode = { id, handlers: new Map(), judges: new Map(), verdicts: [] }
      nodes.push(node)
      return {
        node,
        async publish (topic, data) {
          if (topic === TOPICS.certified) announcers.push(id)
          for (const other of nodes) {
            if (other === node || (topic === TOPICS.rounds && !committee.includes(other.id))) continue
            setImmediate(() => {
              const verdict = other.judges.get(topic)?.(data) ?? 'accept'
              if (topic === TOPICS.certified) other.verdicts.push(verdict)
              if (verdict === 'accept') for (const h of other.handlers.get(topic) ?? []) h(data)
            })
          }
        },
        subscribe (topic, handler) {
          const set = node.handlers.get(topic) ?? new Set()
          set.add(handler)
          node.handlers.set(topic, set)
          return () => { set.delete(handler) }
        },
        validate (topic, judge) {
          node.judges.set(topic, judge)
          return () => { node.judges.delete(topic) }
        }
      }
    }
  }
}

describe('certified announcements', () => {
  it('come from the proposer; an observer takes them, a member holding the certificate drops them', async () => {
    const announcers: string[] = []
    const members = Array.from({ length: 4 }, () => signerOf(randomSecretKey()))
    const candidates = members.map(m => m.peerId)
    const net = bus(announcers, candidates)
    const observerSigner = signerOf(randomSecretKey())
    const announced: Uint8Array[] = []
    const engines = [...members, observerSigner].map(signer => {
      const pubsub = net.join(signer.peerId)
      const op: Operation = {
        name: 'test',
        objective: true,
        proposers: 'leader',
        context: () => ({ candidates, seed: SEED }),
        evaluate: async (_key, input) => sha256(input)
      }
      const engine = new RoundEngine({ signer, pubsub, topicPrefix: PREFIX, f: 1, deadlines: { minMs: 1000 } })
      engine.register(op)
      engine.start()
      if (signer === observerSigner) pubsub.subscribe(TOPICS.certified, (data) => { announced.push(data) })
      return { engine, pubsub }
    })
    const proposerId = selectCommittee(candidates, SEED, 1, 4)[0]
    const proposer = engines[candidates.indexOf(proposerId)]
    for (let round = 0; round < 3; round++) {
      const key = `round:${round}`
      const input = new Uint8Array(64 * 1024).fill(round + 1)
      await proposer.engine.run('test', key, async () => input, { maxAttempts: 1 })
      const observer = engines[4].engine
      await expect.poll(() => observer.certificateOf(key) !== undefined).toBe(true)
      for (const { engine } of engines.slice(0, 4)) await expect.poll(() => engine.certificateOf(key) !== undefined).toBe(true)
    }
    // The proposer announced every round; another member only where the proposer's vote was not in its certificate.
    expect(announcers.filter(a => a === proposerId)).toHaveLength(3)
    expect(announcers.length).toBeLessThanOrEqual(6)
    expect(engines[4].pubsub.node.verdicts.filter(v => v === 'accept')).toHaveLength(3)
    // A member holding the certificate neither takes nor relays another copy of its announcement.
    for (const { pubsub } of engines.slice(0, 4)) {
      expect(pubsub.node.judges.get(TOPICS.certified)?.(announced[2])).toBe('ignore')
    }
    for (const { engine } of engines) engine.stop()
  })
})
