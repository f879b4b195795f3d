// The primary tier: the latest certified epoch and its entries, and the certified headers of the
// epochs before it (header-archive.ts). An epoch is accepted only if it extends the held chain
// of headers (epoch n+1 whose prev is the newest held header's digest, or epoch 0 on an empty
// node; or it is the very epoch a held header certifies), its certificate passes the injected
// verifier against the epoch before it, and every entry in it is validly signed. Headers alone
// (acceptHeaders) are checked link by link the same way. Acceptance replaces the tier's
// entries in one atomic batch.
import { equalBytes } from '../../crypto/index.ts'
import { verifyEntrySignature, entryId } from '../entry/entry.ts'
import { EpochRejectedError } from '../errors.ts'
import type { SporeDatabase, SporeBatchOp } from '../store/spore-database.ts'
import type { TierStore } from '../store/tier-store.ts'
import type { SporeLogger } from '../logger.ts'
import { decodeEpoch, decodeCertifiedHeader, type CertifiedHeader, type Epoch } from './epoch.ts'
import type { EpochCertificateVerifier } from './certificate.ts'
import { HeaderArchive, type HeaderPair } from './header-archive.ts'

const LATEST = 'latest'

export interface PrimarySporeOptions {
  db: SporeDatabase
  store: TierStore
  network: string
  verifier: EpochCertificateVerifier
  log: SporeLogger
  /** Certified headers kept, in epochs (default a week at the default interval). */
  headerRetention?: number
  /**
   * Where this node's chain may start besides epoch 0: a certified epoch (number and header
   * digest) that the invite it joined with vouched for. Used only while it holds no epoch.
   */
  anchor?: { epoch: number, digest: Uint8Array }
}

export class PrimarySpore {
  private readonly o: PrimarySporeOptions
  private latestHeader: CertifiedHeader | undefined
  private committeeSet: ReadonlySet<string> = new Set()
  private queue: Promise<unknown> = Promise.resolve()
  private readonly listeners = new Set<(epoch: Epoch) => void | Promise<void>>()
  readonly headers: HeaderArchive

  constructor (options: PrimarySporeOptions) {
    this.o = options
    this.headers = new HeaderArchive(options.store.buckets.meta, options.headerRetention)
  }

  async load (): Promise<void> {
    await this.headers.load()
    const bytes = await this.o.store.buckets.meta.get(LATEST)
    if (bytes === undefined) return
    this.setLatest(decodeEpoch(bytes))
  }

  /** The latest accepted epoch's certified header, if any. */
  latest (): CertifiedHeader | undefined {
    return this.latestHeader
  }

  /** The newest epoch whose certified header this node holds, with or without its entries. */
  async heldThrough (): Promise<number | undefined> {
    return (await this.newestHeader())?.header.epoch
  }

  /** The epoch after which this node needs headers: the newest it holds, else the one before its anchor (null: from epoch 0). */
  async needsAfter (): Promise<number | null> {
    const held = await this.heldThrough()
    if (held !== undefined) return held
    const anchor = this.o.anchor
    return anchor !== undefined && anchor.epoch > 0 ? anchor.epoch - 1 : null
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
  async headersAfter (epoch: number | null, max = 1024): Promise<HeaderPair[]> {
    const latest = this.latestHeader?.header.epoch
    if (latest === undefined) return []
    return await this.headers.range(epoch === null ? 0 : epoch + 1, latest - 1, max)
  }

  /**
   * Stores certified headers of epochs after the newest held one, whose entries this node does
   * not have (yet): each link is checked as an epoch's is; those already held are skipped.
   */
  async acceptHeaders (chain: HeaderPair[]): Promise<void> {
    const run = this.queue.then(async () => {
      let previous = await this.newestHeader()
      const headers: CertifiedHeader[] = []
      for (const [headerBytes, certificate] of chain) {
        // each check is a few signatures: the event loop gets a turn between a few of them
        if (headers.length % 16 === 15) await new Promise(resolve => setTimeout(resolve, 0))
        const link = decodeCertifiedHeader(headerBytes, certificate)
        if (previous !== undefined && link.header.epoch <= previous.header.epoch) continue
        this.checkLink(link, previous)
        headers.push(link)
        previous = link
      }
      if (headers.length === 0) return
      const { ops, commit } = await this.headers.writeOps(headers)
      await this.o.db.write(ops)
      commit()
    })
    this.queue = run.catch(() => {})
    await run
  }

  /** The newest certified header held: the latest epoch's, or a later one stored alone. */
  private async newestHeader (): Promise<CertifiedHeader | undefined> {
    const tip = this.headers.tip()
    const latest = this.latestHeader
    if (tip === undefined || (latest !== undefined && tip <= latest.header.epoch)) return latest
    return await this.headers.get(tip) ?? latest
  }

  /**
   * Drops the held chain (the primary tier's entries, the kept headers, the latest epoch): the
   * node then takes the primary spore again from its anchor, as a new node does. For an
   * operator who vouches for a newer epoch where the chain can no longer be checked.
   */
  async forgetChain (): Promise<void> {
    const run = this.queue.then(async () => {
      const store = this.o.store
      const dels = [...store.indexed()].map(e => ({ type: e.type, key: e.key }))
      const headers = await this.headers.clearOps()
      const ops: SporeBatchOp[] = [...dels.map(d => store.delOp(d.type, d.key)), ...headers.ops, { type: 'del', sublevel: store.buckets.meta, key: LATEST }]
      await this.o.db.write(ops)
      headers.commit()
      store.applied([], dels)
      this.latestHeader = undefined
      this.committeeSet = new Set()
    })
    this.queue = run.catch(() => {})
    await run
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
    let previous = await this.newestHeader()
    for (const [headerBytes, certificate] of chain) {
      const link = decodeCertifiedHeader(headerBytes, certificate)
      if (previous !== undefined && link.header.epoch <= previous.header.epoch) continue
      this.checkLink(link, previous)
      headers.push(link)
      previous = link
    }
    if (previous !== undefined && epoch.header.epoch <= previous.header.epoch) {
      // Its header is held already (checked when it was stored): the entries must be what it certifies.
      const stored = await this.headers.get(epoch.header.epoch)
      if (stored === undefined || !equalBytes(stored.digest, epoch.digest)) throw new EpochRejectedError(`epoch ${epoch.header.epoch} is not the certified epoch of that number`)
    } else {
      this.checkLink(epoch, previous)
      headers.push(epoch)
    }
    for (const e of epoch.entries) if (!verifyEntrySignature(e)) throw new EpochRejectedError(`epoch ${epoch.header.epoch} holds an entry with a bad signature (${entryId(e.type, e.key).slice(0, 120)})`)

    const store = this.o.store
    const ops: SporeBatchOp[] = []
    const keep = new Set(epoch.entries.map(e => entryId(e.type, e.key)))
    const dels = [...store.indexed()].filter(e => !keep.has(entryId(e.type, e.key))).map(e => ({ type: e.type, key: e.key }))
    for (const d of dels) ops.push(store.delOp(d.type, d.key))
    for (const e of epoch.entries) ops.push(store.putOp(e))
    const archived = await this.headers.writeOps(headers)
    ops.push(...archived.ops)
    ops.push({ type: 'put', sublevel: store.buckets.meta, key: LATEST, value: epoch.bytes })
    await this.o.db.write(ops)
    archived.commit()
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
      // the anchor's digest is what the invite vouched for: its certificate needs no earlier header
      const anchor = this.o.anchor
      if (anchor !== undefined && n === anchor.epoch && equalBytes(next.digest, anchor.digest)) return
      if (n !== 0 || next.header.prev !== null) throw new EpochRejectedError(`epoch ${n} cannot be checked: the chain from epoch 0${anchor === undefined ? '' : ` or from the invite's epoch ${anchor.epoch}`} is missing`)
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
