import { describe, it, expect, afterEach } from 'vitest'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import { encodeCanonical, decodeCanonical } from '../../crypto/index.ts'
import { buildHeader, certifyEpoch, encodeEpoch, decodeEpoch, EpochRejectedError, PrimaryEpochService, Spores, type Signer, type SignedEntry } from '../../spores/index.ts'
import { identity, networkRoot, tempDir, openTestSpores, entry, nodeValue, NETWORK, type Root } from './fixtures.ts'
import { p2pIdentity, startNode } from './p2p.ts'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
})

async function fresh (root: Root, extra: Parameters<typeof openTestSpores>[3] = {}): Promise<Spores> {
  const dir = await tempDir()
  const spores = await openTestSpores(dir.path, root, undefined, extra)
  cleanups.push(async () => { try { await spores.close() } finally { await dir.remove() } })
  return spores
}

/** A chain of certified epochs: 0 signed by the root, each next one by the committee named in the one before. */
function chain (root: Root, committee: Signer[], contents: SignedEntry[][], network = NETWORK): Uint8Array[] {
  const out: Uint8Array[] = []
  let prev: Uint8Array | null = null
  contents.forEach((entries, n) => {
    const h = buildHeader({ network, epoch: n, prev, entries, committee: committee.map(c => c.peerId), issuedAt: 1000 + n })
    out.push(encodeEpoch(h.headerBytes, certifyEpoch(h.digest, n === 0 ? [root.signer] : committee.slice(0, 3)), h.entries))
    prev = h.digest
  })
  return out
}

describe('primary spore', () => {
  it('accepts a certified chain of epochs and replaces its entries atomically with each', async () => {
    const root = networkRoot()
    const committee = [identity(), identity(), identity(), identity()]
    const a = identity()
    const b = identity()
    const epochs = chain(root, committee, [[entry(a, 'node', nodeValue(1))], [entry(b, 'node', nodeValue(2))]])
    const spores = await fresh(root)
    await spores.primary.accept(epochs[0])
    expect((await spores.ls({ tier: 'primary' })).map(e => e.key)).toEqual([a.peerId])
    await spores.primary.accept(epochs[1])
    expect((await spores.ls({ tier: 'primary' })).map(e => e.key)).toEqual([b.peerId])
    expect(spores.stats().primaryEpoch).toBe(1)
    expect([...spores.primary.committee()].sort()).toEqual(committee.map(c => c.peerId).sort())
  })

  it('rejects epochs that are uncertified, under quorum, out of chain or of another network, changing nothing', async () => {
    const root = networkRoot()
    const committee = [identity(), identity(), identity(), identity()]
    const spores = await fresh(root)
    const [e0, e1] = chain(root, committee, [[entry(identity(), 'node', nodeValue())], [entry(identity(), 'node', nodeValue())]])

    const stranger = networkRoot()
    await expect(spores.primary.accept(chain(stranger, committee, [[]])[0])).rejects.toThrow(EpochRejectedError)
    await expect(spores.primary.accept(chain(root, committee, [[]], 'other-net')[0])).rejects.toThrow(/network/)
    await expect(spores.primary.accept(e1)).rejects.toThrow(/chain from epoch 0/)
    await spores.primary.accept(e0)

    const d0 = decodeEpoch(e0)
    const h = buildHeader({ network: NETWORK, epoch: 1, prev: d0.digest, entries: [], committee: [], issuedAt: 5 })
    await expect(spores.primary.accept(encodeEpoch(h.headerBytes, certifyEpoch(h.digest, committee.slice(0, 2)), h.entries))).rejects.toThrow(/certificate/)
    await expect(spores.primary.accept(encodeEpoch(h.headerBytes, certifyEpoch(h.digest, [identity(), identity(), identity()]), h.entries))).rejects.toThrow(/certificate/)
    const tampered = new Uint8Array(e1)
    tampered[tampered.length - 3] ^= 1
    await expect(spores.primary.accept(tampered)).rejects.toThrow(EpochRejectedError)
    await expect(spores.primary.accept(e0)).rejects.toThrow(/not newer/)
    expect(spores.stats().primaryEpoch).toBe(0)
    expect((await spores.ls({ tier: 'primary' })).map(e => e.key)).toEqual(d0.entries.map(e => e.key))
  })

  it('serves its latest epoch to a peer that missed several, which checks the chain and stores it', async () => {
    const root = networkRoot()
    const committee = [identity(), identity(), identity(), identity()]
    const contents = Array.from({ length: 4 }, (_, n) => [entry(identity(), 'node', nodeValue(n))])
    const epochs = chain(root, committee, contents)
    const names = { protocolPrefix: `/mycelium/${NETWORK}`, topicPrefix: `mycelium/${NETWORK}` }
    const members = await Promise.all([0, 1].map(async () => {
      const dir = await tempDir()
      const { privateKey, signer } = await p2pIdentity()
      const node = await startNode(privateKey)
      const spores = await Spores.open({ database: join(dir.path, 'db'), network: NETWORK, rootPublicKey: root.publicKey, signer })
      const net = await spores.attach({ host: node, pubsub: node.services.pubsub, names, syncIntervalMs: 0 })
      cleanups.push(async () => { try { await spores.close(); await node.stop() } finally { await dir.remove() } })
      return { node, spores, net }
    }))
    const [server, client] = members
    for (const e of epochs) await server.spores.primary.accept(e)
    await client.spores.primary.accept(epochs[0])
    await client.node.dial(server.node.getMultiaddrs()[0])
    const got = await client.net.epochs.fetchFrom(server.node.peerId)
    expect(got?.header.epoch).toBe(3)
    expect(await client.spores.ls({ tier: 'primary' })).toEqual(await server.spores.ls({ tier: 'primary' }))
    expect(await client.net.epochs.fetchFrom(server.node.peerId)).toBeUndefined()

    // a peer serving an epoch certified by someone else's root changes nothing
    const forged = chain(networkRoot(), committee, [[entry(identity(), 'node', nodeValue())]])
    const fresh3 = await fresh(root)
    const third = await p2pIdentity()
    const thirdNode = await startNode(third.privateKey)
    cleanups.push(async () => { await thirdNode.stop() })
    const thirdNet = await fresh3.attach({ host: thirdNode, pubsub: thirdNode.services.pubsub, names, syncIntervalMs: 0 })
    const forgerNode = await startNode((await p2pIdentity()).privateKey)
    cleanups.push(async () => { await forgerNode.stop() })
    await forgerNode.handle(`${names.protocolPrefix}/spores/primary/1.0.0`, (stream) => {
      const lp = lpStream(stream)
      void (async () => { await lp.read(); await lp.write(encodeCanonical({ headers: [], epoch: forged[0] })) })().catch(() => {})
    })
    await thirdNode.dial(forgerNode.getMultiaddrs()[0])
    await expect(thirdNet.epochs.fetchFrom(forgerNode.peerId)).rejects.toThrow(EpochRejectedError)
    expect(fresh3.stats().primaryEpoch).toBeNull()
    expect(await fresh3.ls({ tier: 'primary' })).toEqual([])
  })

  it('a new node of a network older than one page of headers checks the chain page by page and takes the latest epoch; a forged page changes nothing', async () => {
    const root = networkRoot()
    const committee = [identity(), identity(), identity(), identity()]
    const epochs = chain(root, committee, Array.from({ length: 11 }, (_, n) => [entry(identity(), 'node', nodeValue(n))]))
    const protocol = `/mycelium/${NETWORK}/test/primary-pages/1.0.0`
    // pages of 3 headers: epochs 0–9 lie between a new node and the latest (10), four pages
    const peer = async (): Promise<{ spores: Spores, node: Awaited<ReturnType<typeof startNode>>, service: PrimaryEpochService }> => {
      const spores = await fresh(root)
      const node = await startNode((await p2pIdentity()).privateKey)
      cleanups.push(async () => { await node.stop() })
      const service = new PrimaryEpochService({ host: node, protocol, primary: spores.primary, log: spores.log, headersPerResponse: 3 })
      await service.start()
      return { spores, node, service }
    }
    const server = await peer()
    const client = await peer()
    for (const e of epochs) await server.spores.primary.accept(e)
    await client.node.dial(server.node.getMultiaddrs()[0])
    const got = await client.service.fetchFrom(server.node.peerId)
    expect(got?.header.epoch).toBe(10)
    expect(await client.spores.ls({ tier: 'primary' })).toEqual(await server.spores.ls({ tier: 'primary' }))
    expect((await client.spores.primary.headersAfter(null, 100)).map(([h]) => h)).toEqual(epochs.slice(0, 10).map(e => decodeEpoch(e).headerBytes))

    // a peer whose second page carries a header under a forged certificate: the first page's
    // checked headers are kept, nothing after the forgery, and no epoch is taken
    const liar = await startNode((await p2pIdentity()).privateKey)
    cleanups.push(async () => { await liar.stop() })
    const pairs = epochs.map(e => { const d = decodeEpoch(e); return [d.headerBytes, d.certificate] as [Uint8Array, Uint8Array] })
    const forged = decodeEpoch(epochs[4])
    pairs[4] = [forged.headerBytes, certifyEpoch(forged.digest, [identity(), identity(), identity()])]
    await liar.handle(protocol, (stream) => {
      const lp = lpStream(stream)
      void (async () => {
        const { have } = decodeCanonical((await lp.read()).subarray()) as { have: number | null }
        const from = have === null ? 0 : have + 1
        await lp.write(encodeCanonical({ headers: pairs.slice(from, Math.min(from + 3, 10)), epoch: epochs[10] }))
      })().catch(() => {})
    })
    const third = await peer()
    await third.node.dial(liar.getMultiaddrs()[0])
    await expect(third.service.fetchFrom(liar.peerId)).rejects.toThrow(/certificate/)
    expect(third.spores.stats().primaryEpoch).toBeNull()
    expect(await third.spores.primary.heldThrough()).toBe(2)
    // and an honest peer takes it on from there
    await third.node.dial(server.node.getMultiaddrs()[0])
    expect((await third.service.fetchFrom(server.node.peerId))?.header.epoch).toBe(10)
  })

  it('a new node whose invite vouched for a certified epoch starts its chain there when members no longer keep epoch 0; another digest there is refused', async () => {
    const root = networkRoot()
    const committee = [identity(), identity(), identity(), identity()]
    const epochs = chain(root, committee, Array.from({ length: 11 }, (_, n) => [entry(identity(), 'node', nodeValue(n))]))
    const protocol = `/mycelium/${NETWORK}/test/primary-anchor/1.0.0`
    const peer = async (extra: Parameters<typeof openTestSpores>[3] = {}): Promise<{ spores: Spores, node: Awaited<ReturnType<typeof startNode>>, service: PrimaryEpochService }> => {
      const spores = await fresh(root, extra)
      const node = await startNode((await p2pIdentity()).privateKey)
      cleanups.push(async () => { await node.stop() })
      const service = new PrimaryEpochService({ host: node, protocol, primary: spores.primary, log: spores.log, headersPerResponse: 3 })
      await service.start()
      return { spores, node, service }
    }
    // the member keeps the headers of the last 5 epochs only: epoch 0 is gone
    const server = await peer({ headerRetention: 5 })
    for (const e of epochs) await server.spores.primary.accept(e)
    expect((await server.spores.primary.headersAfter(null, 100)).length).toBe(4)
    const ask = async (extra: Parameters<typeof openTestSpores>[3]): Promise<Spores> => {
      const client = await peer(extra)
      await client.node.dial(server.node.getMultiaddrs()[0])
      await client.service.fetchFrom(server.node.peerId)
      return client.spores
    }
    // without an anchor there is no chain to check
    await expect(ask({})).rejects.toThrow(/chain from epoch 0 is missing/)
    // the anchor the inviter wrote: its latest epoch then (7)
    const seven = decodeEpoch(epochs[7])
    const anchored = await ask({ epochAnchor: { epoch: 7, digest: seven.digest } })
    expect(anchored.stats().primaryEpoch).toBe(10)
    expect(await anchored.ls({ tier: 'primary' })).toEqual(await server.spores.ls({ tier: 'primary' }))
    expect((await anchored.primary.headersAfter(null, 100)).map(([h]) => h)).toEqual(epochs.slice(7, 10).map(e => decodeEpoch(e).headerBytes))
    // an anchor naming another digest at that epoch takes nothing
    const wrong = new Uint8Array(seven.digest)
    wrong[0] ^= 1
    await expect(ask({ epochAnchor: { epoch: 7, digest: wrong } })).rejects.toThrow(/from the invite's epoch 7 is missing/)

    // a node that held epochs 0–3 and was away past the retention cannot check its way on; its
    // operator drops the chain (mycelium spores reanchor) and it starts again at epoch 7
    const dir = await tempDir()
    cleanups.push(async () => { await dir.remove() })
    const away = await openTestSpores(dir.path, root)
    for (const e of epochs.slice(0, 4)) await away.primary.accept(e)
    const awayNode = await startNode((await p2pIdentity()).privateKey)
    cleanups.push(async () => { await awayNode.stop() })
    const awayService = new PrimaryEpochService({ host: awayNode, protocol, primary: away.primary, log: away.log, headersPerResponse: 3 })
    await awayNode.dial(server.node.getMultiaddrs()[0])
    await expect(awayService.fetchFrom(server.node.peerId)).rejects.toThrow(/does not follow epoch 3/)
    await away.primary.forgetChain()
    expect(away.stats().primaryEpoch).toBeNull()
    expect(await away.ls({ tier: 'primary' })).toEqual([])
    expect(await away.primary.headersAfter(null, 100)).toEqual([])
    await away.close()
    const back = await openTestSpores(dir.path, root, undefined, { epochAnchor: { epoch: 7, digest: seven.digest } })
    cleanups.push(async () => { await back.close() })
    expect(back.stats().primaryEpoch).toBeNull()
    const backService = new PrimaryEpochService({ host: awayNode, protocol, primary: back.primary, log: back.log, headersPerResponse: 3 })
    expect((await backService.fetchFrom(server.node.peerId))?.header.epoch).toBe(10)
    expect(await back.ls({ tier: 'primary' })).toEqual(await server.spores.ls({ tier: 'primary' }))
  })

  it('gives the BFT engine the next epoch\'s entries, a deterministic header and a sink for certified epochs', async () => {
    const root = networkRoot()
    const committee = [identity(), identity(), identity(), identity()]
    const a = identity()
    const b = identity()
    const [e0] = chain(root, committee, [[entry(a, 'node', nodeValue(1), { seq: 1 })]])
    const x = await fresh(root)
    const y = await fresh(root)
    for (const s of [x, y]) await s.primary.accept(e0)
    await x.merge('latent', [entry(a, 'node', nodeValue(2), { seq: 2 }), entry(b, 'node', nodeValue(3))])
    const genesis = decodeEpoch(e0)
    const previous = { epoch: 0, digest: genesis.digest, issuedAt: genesis.header.issuedAt, candidates: genesis.header.committee, entries: genesis.entries.map(e => e.bytes) }
    // a's newer node entry replaces the certified one, b's is new; the candidates stay the committee (no sclerotium entry with tenure yet)
    const { entries: inputs, candidates } = await x.epochInput.propose(previous, 2000)
    expect(inputs).toHaveLength(2)
    expect(candidates).toEqual(committee.map(c => c.peerId).sort())
    const body = { epoch: 1, prev: genesis.digest, issuedAt: 2000, entries: inputs, candidates }
    expect(y.epochInput.violation(body, previous)).toBeUndefined()
    // another member builds the same header from the same body, whatever the order of entries
    const built = x.epochInput.build(body)
    expect(y.epochInput.build({ ...body, entries: [...inputs].reverse() })).toEqual(built)
    expect(y.epochInput.readHeader(built.headerBytes)).toMatchObject({ epoch: 1, candidates: [...body.candidates].sort(), digest: built.digest })
    const certificate = certifyEpoch(built.digest, committee.slice(1))
    await y.epochInput.accept({ headerBytes: built.headerBytes, certificate, entries: built.entries })
    expect((await y.ls({ tier: 'primary', type: 'node' })).map(e => e.seq).sort()).toEqual([1, 2])
    expect((await y.epochInput.anchor())?.headerBytes).toEqual(built.headerBytes)
  })
})
