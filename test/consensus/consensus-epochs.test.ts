import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { toHex, encodeCanonical, randomBytesOf, decodeCanonical } from '../../crypto/index.ts'
import { decodeEntry, encodeEpoch, EpochRejectedError } from '../../spores/index.ts'
import {
  verifyEpochCertificate, verifyCertificate, buildCertificate, signMessage, encodeEpochProposal, commitmentOf, roundIdOf, inputDigestOf, proposerOf, buildEvidence,
  bftEpochVerifier, verifyEvidence, EPOCH_OPERATION, epochKey, ConflictingEpochError, consensusTopics, decodeMessage, type RoundHeader, type EpochRecord
} from '../../consensus/index.ts'
import { startCluster, until, latestEpoch, TOPIC_PREFIX, type Cluster } from './consensus-cluster.ts'
import { networkRoot, tempDir, openTestSpores } from '../spores/fixtures.ts'

function base (r: EpochRecord): { epoch: number, digest: Uint8Array, issuedAt: number, entries: Uint8Array[] } {
  return { epoch: r.epoch, digest: r.digest, issuedAt: r.issuedAt, entries: r.entries! }
}

function link (r: EpochRecord): { header: { epoch: number, committee: string[] }, digest: Uint8Array, certificate: Uint8Array } {
  return { header: { epoch: r.epoch, committee: r.candidates }, digest: r.digest, certificate: r.certificate }
}

describe('primary epochs by commit-reveal BFT', () => {
  let cluster: Cluster

  beforeAll(async () => {
    cluster = await startCluster({ size: 4, f: 1, intervalMs: 300 })
    await until('epoch 3 everywhere', () => cluster.nodes.every(n => latestEpoch(n) >= 3), 90_000)
  }, 120_000)

  afterAll(async () => {
    await cluster?.close()
  })

  it('four honest sclerotia certify a chain of epochs that every primary tier accepts', async () => {
    for (let e = 1; e <= 3; e++) {
      const digests = new Set(cluster.nodes.map(n => toHex(n.consensus.epochs.chain.get(e)!.digest)))
      expect(digests.size).toBe(1)
    }
    await until('primary tiers at epoch 3', () => cluster.nodes.every(n => (n.spores.primary.latest()?.header.epoch ?? 0) >= 3))
    // The agreed snapshot carries the nodes' own entries into every primary tier.
    const primaryNodes = await cluster.nodes[3].spores.ls({ tier: 'primary', type: 'node' })
    expect(primaryNodes.length).toBeGreaterThanOrEqual(1)
    const report = cluster.nodes[0].consensus.epochsReport()
    expect(report.readOnly).toBe(false)
    expect(report.epochs[0].signers.length).toBeGreaterThanOrEqual(3)
    expect(report.epochs[0].committee.length).toBe(4)
    for (const n of cluster.nodes) expect(n.consensus.trustReport().peers.flatMap(p => p.slashes)).toEqual([])
    const m = cluster.nodes[0].consensus.metrics()
    expect(m.roundsCertified).toBeGreaterThanOrEqual(1)
    expect(m.roundLatencyMs.median).not.toBeNull()
  }, 150_000)

  it('rejects tampered certificates, offline and in the primary tier', async () => {
    const chain = cluster.nodes[0].consensus.epochs.chain
    const prev = chain.get(1)!
    const rec = chain.get(2)!
    const params = { f: 1 }
    expect(verifyEpochCertificate(link(rec), link(prev), params)).toBe(true)
    for (let i = 0; i < rec.certificate.length; i += 29) {
      const bad = Uint8Array.from(rec.certificate)
      bad[i] ^= 0x01
      expect(verifyEpochCertificate({ ...link(rec), certificate: bad }, link(prev), params), `byte ${i}`).toBe(false)
    }
    const raw = decodeCanonical(rec.certificate) as { header: unknown, result: Uint8Array, votes: Uint8Array[][] }
    const withVotes = (votes: Uint8Array[][]): Uint8Array => encodeCanonical({ ...raw, votes })
    expect(verifyEpochCertificate({ ...link(rec), certificate: withVotes(raw.votes.slice(0, 2)) }, link(prev), params)).toBe(false)
    expect(verifyEpochCertificate({ ...link(rec), certificate: withVotes([...raw.votes, raw.votes[0]]) }, link(prev), params)).toBe(false)
    expect(verifyEpochCertificate({ ...link(rec), certificate: prev.certificate }, link(prev), params)).toBe(false)
    expect(verifyEpochCertificate({ ...link(rec), digest: randomBytesOf(32) }, link(prev), params)).toBe(false)
    expect(verifyEpochCertificate(link(rec), link(chain.get(0) ?? prev), params)).toBe(false)

    // A fresh primary tier with the BFT verifier: the genuine epoch 1 is accepted, a tampered one is not.
    const dir = await tempDir('consensus-primary-')
    const root = networkRoot()
    try {
      const spores = await openTestSpores(dir.path, root, undefined, { epochVerifier: bftEpochVerifier({ f: 1, genesis: { verify: () => true } }) })
      try {
        const zero = chain.get(0)!
        await spores.primary.accept(encodeEpoch(zero.headerBytes, zero.certificate, (zero.entries ?? []).map(b => decodeEntry(b))))
        const one = chain.get(1)!
        const tampered = Uint8Array.from(one.certificate)
        tampered[tampered.length - 3] ^= 0x80
        await expect(spores.primary.accept(encodeEpoch(one.headerBytes, tampered, (one.entries ?? []).map(b => decodeEntry(b))))).rejects.toBeInstanceOf(EpochRejectedError)
        await spores.primary.accept(encodeEpoch(one.headerBytes, one.certificate, (one.entries ?? []).map(b => decodeEntry(b))))
        expect(spores.primary.latest()?.header.epoch).toBe(1)
      } finally {
        await spores.close()
      }
    } finally {
      await dir.remove()
    }
  })

  it('never votes on an epoch number it holds certified, and never adopts a conflicting certificate', async () => {
    const n0 = cluster.nodes[0]
    const chain = n0.consensus.epochs.chain
    const prev = chain.get(1)!
    const held = chain.get(2)!
    const body = { epoch: 2, prev: prev.digest, issuedAt: prev.issuedAt + 1, entries: [], candidates: prev.candidates }
    const input = encodeEpochProposal(body, base(prev))
    // An attempt n0 proposes: it re-opens epoch 2 with another input.
    const committee = n0.consensus.engine.committeeOf(EPOCH_OPERATION, epochKey(2))!
    let attempt = 2
    while (proposerOf(committee, attempt) !== n0.signer.peerId) attempt++
    const header: RoundHeader = { op: EPOCH_OPERATION, key: epochKey(2), seed: prev.digest, inputDigest: inputDigestOf(input), committee, attempt, f: 1 }
    const proposal = signMessage(n0.signer, { t: 'proposal', from: n0.signer.peerId, header, input, polka: null })
    const id = toHex(roundIdOf(header))
    // Every message a node's engine publishes on the rounds topic is recorded as it is sent.
    const roundsTopic = consensusTopics(TOPIC_PREFIX).rounds
    const sent: Array<{ node: number, t: string, round: string }> = []
    const restore = cluster.nodes.map(n => {
      const pubsub = n.libp2p.services.pubsub
      const own = Object.prototype.hasOwnProperty.call(pubsub, 'publish')
      const original = pubsub.publish
      pubsub.publish = async (topic: string, data: Uint8Array, ...rest: unknown[]) => {
        if (topic === roundsTopic) {
          const m = decodeMessage(data)
          sent.push({ node: n.index, t: m.body.t, round: toHex(m.body.t === 'proposal' ? roundIdOf(m.body.header) : m.body.round) })
        }
        return await original.call(pubsub, topic, data, ...rest)
      }
      return () => {
        if (own) pubsub.publish = original
        else delete pubsub.publish
      }
    })
    try {
      const before = cluster.nodes.map(n => n.consensus.metrics().proposalsForCertified)
      await n0.libp2p.services.pubsub.publish(roundsTopic, proposal.bytes)
      // The path delivers: every other node received the proposal and counted it as one for a certified key.
      await until('every other node got the proposal for certified epoch 2', () => cluster.nodes.slice(1).every(n => n.consensus.metrics().proposalsForCertified > before[n.index]))
      expect(sent.filter(m => m.round === id && m.t !== 'proposal'), 'votes sent in the re-opened round').toEqual([])
      for (const n of cluster.nodes) expect(n.consensus.engine.activeRounds().some(r => r.key === epochKey(2) && r.attempt === attempt)).toBe(false)
    } finally {
      for (const r of restore) r()
    }
    for (const n of cluster.nodes) {
      expect(toHex(n.consensus.engine.certificateOf(epochKey(2))?.result ?? n.consensus.epochs.chain.get(2)!.digest)).toBe(toHex(held.digest))
    }

    // Even a certificate validly signed by a quorum (colluding keys) for another digest is refused.
    const built = n0.spores.epochInput.build(body)
    expect(toHex(built.digest)).not.toBe(toHex(held.digest))
    const round = roundIdOf(header)
    const keys = new Map(cluster.nodes.map(n => [n.signer.peerId, n.signer]))
    const votes = header.committee.slice(0, 3).map(member => {
      const signer = keys.get(member)!
      const nonce = randomBytesOf(32)
      return {
        commit: signMessage(signer, { t: 'commit', from: member, round, commitment: commitmentOf(built.digest, nonce, member, round) }),
        reveal: signMessage(signer, { t: 'reveal', from: member, round, result: built.digest, nonce })
      }
    })
    const forged = buildCertificate(header, built.digest, votes)
    expect(verifyCertificate(forged.bytes).result).toEqual(built.digest)
    expect(verifyEpochCertificate({ header: { epoch: 2, committee: prev.candidates }, digest: built.digest, certificate: forged.bytes }, link(prev), { f: 1 })).toBe(true)
    for (const n of cluster.nodes) {
      await expect(n.consensus.epochs.adopt(built.headerBytes, forged.bytes, built.entries)).rejects.toBeInstanceOf(ConflictingEpochError)
      expect(n.consensus.epochs.conflictsRefused()).toBe(1)
      expect(toHex(n.consensus.epochs.chain.get(2)!.digest)).toBe(toHex(held.digest))
    }
  }, 150_000)

  it('slashes a proposer that opens one attempt with two different inputs', async () => {
    const n0 = cluster.nodes[0]
    const prev = n0.consensus.epochs.chain.get(1)!
    const committee = n0.consensus.engine.committeeOf(EPOCH_OPERATION, epochKey(2))!
    let attempt = 40
    while (proposerOf(committee, attempt) !== n0.signer.peerId) attempt++
    const roundsTopic = consensusTopics(TOPIC_PREFIX).rounds
    for (const issuedAt of [prev.issuedAt + 2, prev.issuedAt + 3]) {
      const input = encodeEpochProposal({ epoch: 2, prev: prev.digest, issuedAt, entries: [], candidates: prev.candidates }, base(prev))
      const header: RoundHeader = { op: EPOCH_OPERATION, key: epochKey(2), seed: prev.digest, inputDigest: inputDigestOf(input), committee, attempt, f: 1 }
      await n0.libp2p.services.pubsub.publish(roundsTopic, signMessage(n0.signer, { t: 'proposal', from: n0.signer.peerId, header, input, polka: null }).bytes)
    }
    const others = cluster.nodes.slice(1)
    await until('every node slashed the equivocating proposer', () => others.every(n => n.consensus.engine.ledger.isExcluded(n0.signer.peerId)))
    for (const n of others) {
      const slash = n.consensus.engine.ledger.slashesOf(n0.signer.peerId).find(s => s.reason === 'equivocate')!
      const evidence = verifyEvidence(n.consensus.engine.evidence(slash.evidenceId)!)
      expect(evidence.accused).toBe(n0.signer.peerId)
      for (const m of others) expect(n.consensus.engine.ledger.slashesOf(m.signer.peerId)).toEqual([])
    }
  }, 90_000)

  it('slashes a proposer whose epoch breaks the content rules, with its own proposal as evidence; forged evidence changes nothing', async () => {
    // Epochs pause (the engines keep listening), so the next epoch stays open for the bad proposal.
    for (const n of cluster.nodes) await n.consensus.epochs.stop()
    // A round already under way may still finish: wait until every node holds the same latest epoch for a second.
    let level = ''
    let since = Date.now()
    await until('the chains stand still at one epoch', () => {
      const now = cluster.nodes.map(latestEpoch).join(',')
      if (now !== level) { level = now; since = Date.now() }
      return new Set(cluster.nodes.map(latestEpoch)).size === 1 && Date.now() - since > 1000
    })
    const n1 = cluster.nodes[1]
    const latest = n1.consensus.epochs.chain.latest()!
    const key = epochKey(latest.epoch + 1)
    const committee = n1.consensus.engine.committeeOf(EPOCH_OPERATION, key)!
    let attempt = 0
    while (proposerOf(committee, attempt) !== n1.signer.peerId) attempt++
    // It drops every entry of the previous epoch and names itself the only candidate.
    const input = encodeEpochProposal({ epoch: latest.epoch + 1, prev: latest.digest, issuedAt: Date.now(), entries: [], candidates: [n1.signer.peerId] }, base(latest))
    const header: RoundHeader = { op: EPOCH_OPERATION, key, seed: latest.digest, inputDigest: inputDigestOf(input), committee, attempt, f: 1 }
    const roundsTopic = consensusTopics(TOPIC_PREFIX).rounds
    await n1.libp2p.services.pubsub.publish(roundsTopic, signMessage(n1.signer, { t: 'proposal', from: n1.signer.peerId, header, input, polka: null }).bytes)
    const others = cluster.nodes.filter(n => n !== n1)
    await until('every other node slashed the proposer for its content', () => others.every(n => n.consensus.engine.ledger.slashesOf(n1.signer.peerId).some(s => s.reason === 'bad-proposal')))
    const trustBefore = new Map(others.map(n => [n.index, n.consensus.engine.ledger.trust(cluster.nodes[2].signer.peerId)]))
    for (const n of others) {
      const slash = n.consensus.engine.ledger.slashesOf(n1.signer.peerId).find(s => s.reason === 'bad-proposal')!
      const evidence = verifyEvidence(n.consensus.engine.evidence(slash.evidenceId)!)
      expect(evidence.accused).toBe(n1.signer.peerId)
      // Checked against the certified chain: the proposal really breaks the rules.
      expect(n.consensus.engine.checkEvidence(evidence)).toBeUndefined()
    }
    // Forged evidence against an honest member: its valid proposal called bad, and a committee of the forger's making.
    const n2 = cluster.nodes[2]
    let a2 = 0
    while (proposerOf(committee, a2) !== n2.signer.peerId) a2++
    const honestBody = await n2.spores.epochInput.propose({ epoch: latest.epoch, digest: latest.digest, issuedAt: latest.issuedAt, candidates: latest.candidates, entries: latest.entries! }, Date.now())
    const goodInput = encodeEpochProposal({ epoch: latest.epoch + 1, prev: latest.digest, issuedAt: Date.now(), ...honestBody }, base(latest))
    const goodHeader: RoundHeader = { ...header, inputDigest: inputDigestOf(goodInput), attempt: a2 }
    const good = signMessage(n2.signer, { t: 'proposal', from: n2.signer.peerId, header: goodHeader, input: goodInput, polka: null })
    const evidenceTopic = consensusTopics(TOPIC_PREFIX).evidence
    const forgeries = [
      buildEvidence('bad-proposal', n2.signer.peerId, goodHeader, [good]),
      buildEvidence('bad-proposal', n2.signer.peerId, { ...goodHeader, committee: [n2.signer.peerId], f: 0 }, [good])
    ]
    for (const f of forgeries) {
      // Refused offline (the forged committee's round is not the proposal's), or against the certified chain.
      let refused: string | undefined
      try {
        refused = n1.consensus.engine.checkEvidence(verifyEvidence(f.bytes))
      } catch (err) {
        refused = (err as Error).message
      }
      expect(refused).toBeDefined()
      await n1.libp2p.services.pubsub.publish(evidenceTopic, f.bytes)
    }
    // Delivery is proven by a real piece of evidence sent after the forgeries, on the same topic from the same node.
    const c1 = signMessage(n1.signer, { t: 'commit', from: n1.signer.peerId, round: roundIdOf(header), commitment: randomBytesOf(32) })
    const c2 = signMessage(n1.signer, { t: 'commit', from: n1.signer.peerId, round: roundIdOf(header), commitment: randomBytesOf(32) })
    await n1.libp2p.services.pubsub.publish(evidenceTopic, buildEvidence('equivocate', n1.signer.peerId, header, [c1, c2]).bytes)
    await until('the real evidence arrived after the forgeries', () => others.every(n => n.consensus.engine.ledger.slashesOf(n1.signer.peerId).some(s => s.reason === 'equivocate')))
    for (const n of others) expect(n.consensus.engine.ledger.trust(n2.signer.peerId), `node ${n.index}`).toBe(trustBefore.get(n.index))
    for (const n of others) expect(n.consensus.engine.ledger.slashesOf(n2.signer.peerId)).toEqual([])
  }, 90_000)
})
