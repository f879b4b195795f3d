import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { toHex, encodeCanonical, randomBytesOf, decodeCanonical } from '../../crypto/index.ts'
import { decodeEntry, encodeEpoch, EpochRejectedError } from '../../spores/index.ts'
import {
  verifyEpochCertificate, verifyCertificate, buildCertificate, signMessage, commitmentOf, roundIdOf, inputDigestOf, effectiveF,
  bftEpochVerifier, verifyEvidence, EPOCH_OPERATION, epochKey, ConflictingEpochError, consensusTopics, decodeMessage, type RoundHeader, type EpochRecord
} from '../../consensus/index.ts'
import { startCluster, until, latestEpoch, judgedThrough, TOPIC_PREFIX, type Cluster } from './consensus-cluster.ts'
import { networkRoot, tempDir, openTestSpores } from '../spores/fixtures.ts'

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
    // Withholding in the rounds of epochs 1 to 3 has been judged everywhere before "no slashes" is read.
    await until('rounds of epochs 1-3 judged everywhere', () => cluster.nodes.every(n => judgedThrough(n, 3)))
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
    const input = encodeCanonical(body)
    // Find an attempt this node proposes, then re-open epoch 2 with another input.
    let attempt = 2
    while (n0.consensus.engine.committeeFor(EPOCH_OPERATION, epochKey(2), attempt)![0] !== n0.signer.peerId) attempt++
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
    let header: RoundHeader
    try {
      header = await n0.consensus.engine.propose(EPOCH_OPERATION, epochKey(2), input, attempt)
      const id = toHex(roundIdOf(header))
      const listed = (n: Cluster['nodes'][number]): ReturnType<typeof n.consensus.engine.activeRounds>[number] | undefined =>
        n.consensus.engine.activeRounds().find(r => r.key === epochKey(2) && r.attempt === attempt)
      // The path delivers: the proposal went out on the rounds topic and every node took the round
      // as known (checked its committee and offered itself the vote).
      expect(sent.filter(m => m.t === 'proposal' && m.round === id).map(m => m.node)).toEqual([0])
      const seen = new Set<number>()
      const atFailure = new Map<number, { commits: number, reveals: number }>()
      await until('every node knows the round, and its reveal deadline passed on every node', () => {
        for (const n of cluster.nodes) {
          const round = listed(n)
          if (round !== undefined) seen.add(n.index)
          if (round?.failed === true && !atFailure.has(n.index)) atFailure.set(n.index, { commits: round.commits, reveals: round.reveals })
        }
        return atFailure.size === cluster.nodes.length
      })
      // The commit phase is over on every node, and the round (still held) got no commitment.
      for (const n of cluster.nodes) expect(atFailure.get(n.index), `node ${n.index}`).toEqual({ commits: 0, reveals: 0 })
      // Once a node has closed the round it can no longer vote in it: then nothing it sent is missing.
      await until('every node closed the round', () => cluster.nodes.every(n => seen.has(n.index) && listed(n) === undefined))
      expect(sent.filter(m => m.round === id && m.t !== 'proposal'), 'votes sent in the re-opened round').toEqual([])
    } finally {
      for (const r of restore) r()
    }
    for (const n of cluster.nodes) {
      expect(toHex(n.consensus.engine.certificateOf(epochKey(2))?.result ?? n.consensus.epochs.chain.get(2)!.digest)).toBe(toHex(held.digest))
    }

    // Even a certificate validly signed by a quorum (colluding keys) for another digest is refused.
    const built = await n0.spores.epochInput.build(body)
    expect(toHex(built.digest)).not.toBe(toHex(held.digest))
    const forgedHeader: RoundHeader = { ...header, f: effectiveF(1, header.committee.length) }
    const round = roundIdOf(forgedHeader)
    const keys = new Map(cluster.nodes.map(n => [n.signer.peerId, n.signer]))
    const votes = forgedHeader.committee.slice(0, 3).map(member => {
      const signer = keys.get(member)!
      const nonce = randomBytesOf(32)
      return {
        commit: signMessage(signer, { t: 'commit', from: member, round, commitment: commitmentOf(built.digest, nonce, member, round) }),
        reveal: signMessage(signer, { t: 'reveal', from: member, round, result: built.digest, nonce })
      }
    })
    const forged = buildCertificate(forgedHeader, built.digest, votes)
    expect(verifyCertificate(forged.bytes).result).toEqual(built.digest)
    expect(inputDigestOf(input)).toEqual(forgedHeader.inputDigest)
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
    let attempt = 40
    while (n0.consensus.engine.committeeFor(EPOCH_OPERATION, epochKey(2), attempt)![0] !== n0.signer.peerId) attempt++
    for (const issuedAt of [prev.issuedAt + 2, prev.issuedAt + 3]) {
      await n0.consensus.engine.propose(EPOCH_OPERATION, epochKey(2), encodeCanonical({ epoch: 2, prev: prev.digest, issuedAt, entries: [], candidates: prev.candidates }), attempt)
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
})
