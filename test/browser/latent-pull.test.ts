// The page's catch-up pull (browser-client/app/latent-pull.ts) against the spores' own
// anti-entropy responder on a real libp2p node, in this process: an empty page gets what the
// sclerotium holds, capped and spread over the key space, and pushes nothing.
import { describe, it, expect, afterEach } from 'vitest'
import { join } from 'node:path'
import { Spores, sporeProtocols } from '../../spores/index.ts'
import { pullLatentEntries } from '../../browser-client/app/latent-pull.ts'
import type { HyphaeLibp2p } from '../../browser-client/app/hyphae-node.ts'
import { decodeEntry } from '../../spores/entry/entry.ts'
import { identity, networkRoot, tempDir, entry, NETWORK } from '../spores/fixtures.ts'
import { p2pIdentity, startNode } from '../spores/p2p.ts'

const names = { protocolPrefix: `/mycelium/${NETWORK}`, topicPrefix: `mycelium/${NETWORK}` }
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
})

describe('a page catching up on the latent tier', () => {
  it('pulls what a sclerotium holds: everything when it is little, an even sample when it is much, nothing pushed', async () => {
    const root = networkRoot()
    const dir = await tempDir('latent-pull-')
    const { privateKey, signer } = await p2pIdentity()
    const node = await startNode(privateKey)
    const spores = await Spores.open({ database: join(dir.path, 'db'), network: NETWORK, rootPublicKey: root.publicKey, signer })
    await spores.attach({ host: node, pubsub: node.services.pubsub, names, syncIntervalMs: 0 })
    const page = await startNode((await p2pIdentity()).privateKey)
    cleanups.push(async () => { try { await page.stop(); await spores.close(); await node.stop() } finally { await dir.remove() } })

    const authors = Array.from({ length: 30 }, () => identity())
    const now = Date.now()
    // more than one leaf (128) of records: the responder splits, the page recurses
    const held = Array.from({ length: 900 }, (_, i) => entry(authors[i % 30], 'service', { name: `s${i}`, endpoints: [] }, { key: `${authors[i % 30].peerId}/s${i}`, issuedAt: now }))
    await spores.merge('latent', held)
    await page.dial(node.getMultiaddrs()[0])
    const protocol = sporeProtocols(names).sync

    const all = await pullLatentEntries(page as unknown as HyphaeLibp2p, protocol, node.peerId, 1000, AbortSignal.timeout(10_000))
    expect(new Set(all.map(b => decodeEntry(b).key)).size).toBe(900)

    const sample = await pullLatentEntries(page as unknown as HyphaeLibp2p, protocol, node.peerId, 100, AbortSignal.timeout(10_000))
    expect(sample).toHaveLength(100)
    // spread: the sample has entries of (nearly) every author, not the first few in key order
    expect(new Set(sample.map(b => decodeEntry(b).origin)).size).toBeGreaterThan(20)
    expect((await spores.ls()).length).toBe(900)
    expect(spores.stats().sync?.pulled ?? 0).toBe(0)
  })
})
