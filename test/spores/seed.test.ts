import { describe, it, expect, afterEach } from 'vitest'
import { join } from 'node:path'
import { readFile, writeFile } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { Spores, signerOf, SeedTruncatedError, SeedSignatureError, SeedNetworkMismatchError, SeedFormatError, SeedMembershipError, type ConfirmNode, type Signer } from '../../spores/index.ts'
import { identity, networkRoot, tempDir, entry, NETWORK, type Root } from './fixtures.ts'
import { p2pIdentity, startNode, type TestNode } from './p2p.ts'
import { encodeCanonical, sign, randomSecretKey } from '../../crypto/index.ts'
import { decodeSeedFile } from '../../spores/seed/seed-file.ts'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
})

async function open (root: Root, signer: Signer, network = NETWORK, extra: Partial<Parameters<typeof Spores.open>[0]> = {}): Promise<{ spores: Spores, dir: string }> {
  const dir = await tempDir('spores-seed-')
  const spores = await Spores.open({ database: join(dir.path, 'db'), network, rootPublicKey: root.publicKey, signer, ...extra })
  cleanups.push(async () => { try { await spores.close() } finally { await dir.remove() } })
  return { spores, dir: dir.path }
}

async function sclerotium (): Promise<{ node: TestNode, signer: Signer }> {
  const { privateKey, signer } = await p2pIdentity()
  const node = await startNode(privateKey)
  cleanups.push(async () => { await node.stop() })
  return { node, signer }
}

/** The daemon's confirmation: dial the listed address expecting the listed identity (noise proves it). */
function dialConfirm (importer: TestNode): ConfirmNode {
  return async (peerId, addrs, signal) => {
    for (const addr of addrs) {
      try {
        const conn = await importer.dial(multiaddr(`${addr}/p2p/${peerId}`), { signal })
        if (conn.remotePeer.toString() === peerId) return true
      } catch {}
    }
    return false
  }
}

describe('seed files', () => {
  it('merges entries only of the nodes it could confirm by dialing them, and quarantines the rest', async () => {
    const root = networkRoot()
    const [s1, s2] = [await sclerotium(), await sclerotium()]
    const impostor = identity()
    const addrOf = (n: TestNode): string => n.getMultiaddrs()[0].decapsulate('/p2p').toString()
    const exporter = identity()
    const { spores: source, dir } = await open(root, exporter, NETWORK, { membership: () => new Uint8Array([7, 7, 7]) })
    const nodeEntry = (s: Signer, addr: string) => entry(s, 'node', { addrs: [addr], role: 'sclerotium', hardware: { cores: 8 } })
    // the impostor claims s1's address: dialing it reaches s1, whose noise identity is not the impostor's
    await source.merge('latent', [nodeEntry(s1.signer, addrOf(s1.node)), nodeEntry(s2.signer, addrOf(s2.node)), nodeEntry(impostor, addrOf(s1.node))])
    const file = join(dir, 'net.seed')
    expect(await source.exportSeed(file)).toEqual({ nodes: 3, entries: 3 })

    const importerId = await p2pIdentity()
    const importerNode = await startNode(importerId.privateKey)
    cleanups.push(async () => { await importerNode.stop() })
    const checked: string[] = []
    const { spores } = await open(root, importerId.signer, NETWORK, { checkMembership: (m, p, n) => { checked.push(p); return m.length === 3 && n === NETWORK } })
    const report = await spores.importSeed(file, dialConfirm(importerNode), { confirmTimeoutMs: 3000 })

    expect(checked).toEqual([exporter.peerId])
    expect(report.confirmed).toEqual([s1.signer.peerId, s2.signer.peerId].sort())
    expect(report.quarantined.map(q => [q.peerId, q.entries])).toEqual([[impostor.peerId, 1]])
    expect(report.merged).toBe(2)
    expect((await spores.ls({ tier: 'seed' })).map(e => e.key).sort()).toEqual([s1.signer.peerId, s2.signer.peerId].sort())
    expect((await spores.seed.quarantined()).map(q => q.peerId)).toEqual([impostor.peerId])
    expect(await spores.ls({ tier: 'latent' })).toEqual([])
  })

  it('keeps an unreachable node quarantined until it can be confirmed, then merges its entries', async () => {
    const root = networkRoot()
    const later = await p2pIdentity()
    let node = await startNode(later.privateKey)
    const addr = node.getMultiaddrs()[0].decapsulate('/p2p').toString()
    await node.stop()
    const { spores: source, dir } = await open(root, identity())
    await source.merge('latent', [entry(later.signer, 'node', { addrs: [addr], role: 'sclerotium', hardware: {} })])
    const file = join(dir, 'later.seed')
    await source.exportSeed(file)

    const importerId = await p2pIdentity()
    const importerNode = await startNode(importerId.privateKey)
    cleanups.push(async () => { await importerNode.stop() })
    const { spores } = await open(root, importerId.signer)
    const report = await spores.importSeed(file, dialConfirm(importerNode), { confirmTimeoutMs: 2000 })
    expect(report.confirmed).toEqual([])
    expect(report.quarantined.map(q => q.peerId)).toEqual([later.signer.peerId])
    expect(await spores.ls({ tier: 'seed' })).toEqual([])

    node = await startNode(later.privateKey, addr)
    cleanups.push(async () => { await node.stop() })
    const retried = await spores.seed.retryQuarantined(dialConfirm(importerNode))
    expect(retried).toEqual({ confirmed: [later.signer.peerId], merged: 1 })
    expect((await spores.ls({ tier: 'seed' })).map(e => e.key)).toEqual([later.signer.peerId])
    expect(await spores.seed.quarantined()).toEqual([])
  })

  it('refuses truncated, tampered, foreign and non-seed files with named errors and changes nothing', async () => {
    const root = networkRoot()
    const s = identity()
    const { spores: source, dir } = await open(root, identity())
    await source.merge('latent', [entry(s, 'node', { addrs: ['/ip4/127.0.0.1/tcp/1'], role: 'sclerotium', hardware: {} })])
    const good = join(dir, 'good.seed')
    await source.exportSeed(good)
    const bytes = await readFile(good)
    const { spores: foreign } = await open(root, identity(), 'another-network')
    const foreignFile = join(dir, 'foreign.seed')
    await foreign.exportSeed(foreignFile, { nodes: [] })

    const variants: Array<[string, Uint8Array, new (...a: any[]) => Error]> = []
    variants.push(['truncated', bytes.subarray(0, bytes.length - 10), SeedTruncatedError])
    const tampered = new Uint8Array(bytes)
    tampered[Math.floor(bytes.length / 2)] ^= 0x20
    variants.push(['tampered', tampered, SeedSignatureError])
    variants.push(['foreign', await readFile(foreignFile), SeedNetworkMismatchError])
    variants.push(['not a seed', new TextEncoder().encode('{"nodes":[]}'), SeedFormatError])

    let confirmations = 0
    const { spores } = await open(root, identity(), NETWORK, { checkMembership: () => true })
    for (const [name, data, error] of variants) {
      const path = join(dir, `${name}.seed`)
      await writeFile(path, data)
      await expect(spores.importSeed(path, async () => { confirmations++; return true })).rejects.toThrow(error)
    }
    const { spores: strict } = await open(root, identity(), NETWORK, { checkMembership: () => false })
    await expect(strict.importSeed(good, async () => true)).rejects.toThrow(SeedMembershipError)
    expect(confirmations).toBe(0)
    expect(await spores.ls({ tier: 'seed' })).toEqual([])
    expect(await spores.seed.quarantined()).toEqual([])
  })
})

describe('a seed file of another format', () => {
  it('is refused by name: format 0 passed the old check (an unsigned integer up to 1)', () => {
    const exporter = signerOf(randomSecretKey())
    const body = encodeCanonical({ format: 0, network: NETWORK, exportedAt: 1, exporter: exporter.peerId, membership: new Uint8Array(1), primary: null, nodes: [], entries: [] })
    const payload = encodeCanonical([exporter.peerId, body, sign(exporter.secretKey, body)])
    const file = new Uint8Array(12 + payload.length)
    file.set(new TextEncoder().encode('MYCSEED1'))
    new DataView(file.buffer).setUint32(8, payload.length)
    file.set(payload, 12)
    expect(() => decodeSeedFile(file)).toThrow(SeedFormatError)
    expect(() => decodeSeedFile(file)).toThrow(/unknown seed format/)
  })
})
