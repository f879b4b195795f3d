// The primary tier's archive of certified headers (spores/primary/header-archive.ts): headers
// stored alone are checked link by link, only the newest `headerRetention` are kept, they
// survive a restart of the node's database, and an epoch whose header is held is taken only
// with the entries that header certifies.
import { describe, it, expect, afterEach } from 'vitest'
import { buildHeader, certifyEpoch, encodeEpoch, decodeEpoch, EpochRejectedError, type Signer, type SignedEntry } from '../../spores/index.ts'
import { identity, networkRoot, tempDir, openTestSpores, entry, nodeValue, NETWORK, type Root } from './fixtures.ts'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
})

/** A chain of certified epochs: 0 signed by the root, each next one by the committee named in the one before. */
function chain (root: Root, committee: Signer[], contents: SignedEntry[][]): Uint8Array[] {
  const out: Uint8Array[] = []
  let prev: Uint8Array | null = null
  contents.forEach((entries, n) => {
    const h = buildHeader({ network: NETWORK, epoch: n, prev, entries, committee: committee.map(c => c.peerId), issuedAt: 1000 + n })
    out.push(encodeEpoch(h.headerBytes, certifyEpoch(h.digest, n === 0 ? [root.signer] : committee.slice(0, 3)), h.entries))
    prev = h.digest
  })
  return out
}

const pairOf = (bytes: Uint8Array): [Uint8Array, Uint8Array] => {
  const e = decodeEpoch(bytes)
  return [e.headerBytes, e.certificate]
}

describe('certified header archive', () => {
  it('keeps checked headers alone within the retention, across a restart, and takes an epoch only with the entries its header certifies', async () => {
    const root = networkRoot()
    const committee = [identity(), identity(), identity(), identity()]
    const writer = identity()
    const epochs = chain(root, committee, Array.from({ length: 30 }, (_, n) => [entry(writer, 'node', nodeValue(n), { seq: n + 1 })]))
    const dir = await tempDir()
    cleanups.push(async () => await dir.remove())
    let spores = await openTestSpores(dir.path, root, identity(), { headerRetention: 10 })
    for (let n = 0; n <= 5; n++) await spores.primary.accept(epochs[n])

    // headers alone: a gap and a forged certificate are refused, nothing of the batch stored
    await expect(spores.primary.acceptHeaders([pairOf(epochs[7])])).rejects.toThrow(/does not follow/)
    const forged = decodeEpoch(epochs[6])
    const otherCommittee = [identity(), identity(), identity()]
    await expect(spores.primary.acceptHeaders([[forged.headerBytes, certifyEpoch(forged.digest, otherCommittee)], pairOf(epochs[7])])).rejects.toThrow(/certificate/)
    expect(spores.primary.headers.tip()).toBe(5)

    await spores.primary.acceptHeaders(epochs.slice(6, 25).map(pairOf))
    expect(spores.primary.headers.tip()).toBe(24)
    expect(spores.primary.headers.oldest()).toBe(15)
    // the entries stay those of epoch 5 until a whole epoch comes
    expect(spores.primary.latest()?.header.epoch).toBe(5)

    // a whole epoch whose header is held: only with the entries that header certifies
    const e20 = decodeEpoch(epochs[20])
    const other = buildHeader({ network: NETWORK, epoch: 20, prev: e20.header.prev, entries: [entry(writer, 'node', nodeValue(99), { seq: 99 })], committee: committee.map(c => c.peerId), issuedAt: 1020 })
    await expect(spores.primary.accept(encodeEpoch(other.headerBytes, certifyEpoch(other.digest, committee.slice(0, 3)), other.entries))).rejects.toThrow(EpochRejectedError)
    await spores.primary.accept(epochs[20])
    expect(spores.primary.latest()?.header.epoch).toBe(20)

    await spores.close()
    spores = await openTestSpores(dir.path, root, identity(), { headerRetention: 10 })
    cleanups.push(async () => await spores.close())
    expect(spores.primary.headers.tip()).toBe(24)
    expect(spores.primary.headers.oldest()).toBe(15)
    expect(spores.primary.latest()?.header.epoch).toBe(20)
    const kept = await spores.primary.headers.range(0, 100, 100)
    expect(kept.map(([h]) => h)).toEqual(epochs.slice(15, 25).map(e => decodeEpoch(e).headerBytes))

    // the chain goes on from the newest kept header, and the oldest ones leave the retention
    await spores.primary.accept(epochs[25], epochs.slice(21, 25).map(pairOf))
    expect(spores.primary.latest()?.header.epoch).toBe(25)
    expect(spores.primary.headers.oldest()).toBe(16)
    expect(await spores.primary.headers.get(15)).toBeUndefined()
    expect((await spores.ls({ tier: 'primary' })).map(e => e.value)).toEqual([nodeValue(25)])
  })
})
