// The primary tier: the latest certified epoch and its entries. An epoch is accepted only if
// it extends the held chain (epoch n+1 whose prev is the held digest, or epoch 0 on an empty
// node), its certificate passes the injected verifier against the epoch before it, and every
// entry in it is validly signed. Acceptance replaces the tier's entries in one atomic batch.
import { encodeCanonical, decodeCanonical, equalBytes } from '../../crypto/index.ts'
import { verifyEntrySignature, entryId } from '../entry/entry.ts'
import { EpochRejectedError } from '../errors.ts'
import type { SporeDatabase, SporeBatchOp } from '../store/spore-database.ts'
import type { TierStore } from '../store/tier-store.ts'
import type { SporeLogger } from '../logger.ts'
import { decodeEpoch, decodeCertifiedHeader, type CertifiedHeader, type Epoch } from './epoch.ts'
import type { EpochCertificateVerifier } from './certificate.ts'

const LATEST = 'latest'
const headerKey = (epoch: number): string => `h-${String(epoch).padStart(15, '0')}`

export interface PrimarySporeOptions {
  db: SporeDatabase
  store: TierStore
  network: string
  verifier: EpochCertificateVerifier
  log: SporeLogger
}

export class PrimarySpore {
  private readonly o: PrimarySporeOptions
  private latestHeader: CertifiedHeader | undefined
  private committeeSet: ReadonlySet<string> = new Set()
  private queue: Promise<unknown> = Promise.resolve()
  private readonly listeners = new Set<(epoch: Epoch) => void | Promise<void>>()

  constructor (options: PrimarySporeOptions) {
    this.o = options
  }

  async load (): Promise<void> {
    const bytes = await this.o.store.buckets.meta.get(LATEST)
    if (bytes === undefined) return
    this.setLatest(decodeEpoch(bytes))
  }

  /** The latest accepted epoch's certified header, if any. */
  latest (): CertifiedHeader | undefined {
    return this.latestHeader
  }

  async latestEpoch (): Promise<Epoch | undefined> {
    const bytes = await this.o.store.buckets.meta.get(LATEST)
    return bytes === undefined ? undefined : decodeEpoch(bytes)
  }

  async latestBytes (): Promise<Uint8Array | undefined> {
    return await this.o.store.buckets.meta.get(LATEST)
  }

  /** The committee recorded in the latest epoch (it certifies the next one; it also may issue trust). */
  committee (): ReadonlySet<string> {
    return this.committeeSet
  }

  /** Called after each accepted epoch; accept() resolves once the listeners have. */
  onEpoch (listener: (epoch: Epoch) => void | Promise<void>): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Certified headers after `epoch` up to (not including) the latest, oldest first. */
  async headersAfter (epoch: number | null, max = 1024): Promise<Array<[Uint8Array, Uint8Array]>> {
    const latest = this.latestHeader?.header.epoch
    if (latest === undefined) return []
    const out: Array<[Uint8Array, Uint8Array]> = []
    const from = epoch === null ? 0 : epoch + 1
    for await (const value of this.o.store.buckets.meta.values({ gte: headerKey(from), lt: headerKey(latest), limit: max })) {
      const pair = decodeCanonical(value) as [Uint8Array, Uint8Array]
      out.push(pair)
    }
    return out
  }

  /**
   * Accepts an epoch (bytes or decoded). `chain` holds the certified headers between the held
   * epoch and this one when the node missed some; each link is checked in turn.
   */
  async accept (input: Uint8Array | Epoch, chain: Array<[Uint8Array, Uint8Array]> = []): Promise<Epoch> {
    // one at a time: each acceptance checks against the epoch the previous one left
    const run = this.queue.then(async () => await this.acceptNow(input, chain))
    this.queue = run.catch(() => {})
    return await run
  }

  private async acceptNow (input: Uint8Array | Epoch, chain: Array<[Uint8Array, Uint8Array]>): Promise<Epoch> {
    const epoch = input instanceof Uint8Array ? decodeEpoch(input) : input
    if (epoch.header.network !== this.o.network) throw new EpochRejectedError(`epoch belongs to network ${epoch.header.network.slice(0, 80)}`)
    const held = this.latestHeader
    if (held !== undefined && epoch.header.epoch <= held.header.epoch) throw new EpochRejectedError(`epoch ${epoch.header.epoch} is not newer than the held epoch ${held.header.epoch}`)
    const headers: CertifiedHeader[] = []
    let previous = held
    for (const [headerBytes, certificate] of chain) {
      const link = decodeCertifiedHeader(headerBytes, certificate)
      if (previous !== undefined && link.header.epoch <= previous.header.epoch) continue
      this.checkLink(link, previous)
      headers.push(link)
      previous = link
    }
    this.checkLink(epoch, previous)
    for (const e of epoch.entries) if (!verifyEntrySignature(e)) throw new EpochRejectedError(`epoch ${epoch.header.epoch} holds an entry with a bad signature (${entryId(e.type, e.key).slice(0, 120)})`)

    const store = this.o.store
    const ops: SporeBatchOp[] = []
    const keep = new Set(epoch.entries.map(e => entryId(e.type, e.key)))
    const dels = [...store.indexed()].filter(e => !keep.has(entryId(e.type, e.key))).map(e => ({ type: e.type, key: e.key }))
    for (const d of dels) ops.push(store.delOp(d.type, d.key))
    for (const e of epoch.entries) ops.push(store.putOp(e))
    for (const h of [...headers, epoch]) ops.push({ type: 'put', sublevel: store.buckets.meta, key: headerKey(h.header.epoch), value: encodeCanonical([h.headerBytes, h.certificate]) })
    ops.push({ type: 'put', sublevel: store.buckets.meta, key: LATEST, value: epoch.bytes })
    await this.o.db.write(ops)
    store.applied(epoch.entries, dels)
    this.setLatest(epoch)
    this.o.log.info({ epoch: epoch.header.epoch, entries: epoch.entries.length }, 'primary epoch accepted')
    for (const l of this.listeners) await l(epoch)
    return epoch
  }

  private checkLink (next: CertifiedHeader, previous: CertifiedHeader | undefined): void {
    const n = next.header.epoch
    if (next.header.network !== this.o.network) throw new EpochRejectedError(`epoch ${n} belongs to another network`)
    if (previous === undefined) {
      if (n !== 0 || next.header.prev !== null) throw new EpochRejectedError(`epoch ${n} cannot be checked: the chain from epoch 0 is missing`)
    } else {
      if (n !== previous.header.epoch + 1) throw new EpochRejectedError(`epoch ${n} does not follow epoch ${previous.header.epoch}`)
      if (next.header.prev === null || !equalBytes(next.header.prev, previous.digest)) throw new EpochRejectedError(`epoch ${n} does not extend the held chain`)
    }
    if (!this.o.verifier.verify(next, previous)) throw new EpochRejectedError(`epoch ${n} certificate is not valid`)
  }

  private setLatest (epoch: CertifiedHeader): void {
    this.latestHeader = { header: epoch.header, headerBytes: epoch.headerBytes, digest: epoch.digest, certificate: epoch.certificate }
    this.committeeSet = new Set(epoch.header.committee)
  }
}
