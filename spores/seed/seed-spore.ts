// The seed tier: export a signed seed file, and import one unidirectionally. An imported
// file is checked whole (format, signature, network, exporter membership) before anything is
// written; then each listed node is confirmed by the injected `confirm` (the daemon dials it
// and checks that the peer answering is the listed identity). Entries are merged, validation-
// first, only for confirmed origins; everything else stays in quarantine and is reported.
import { readFile, writeFile, rename, stat } from 'node:fs/promises'
import { encodeCanonical, decodeCanonical, toHex } from '../../crypto/index.ts'
import { decodeEntry, type SignedEntry, type Signer } from '../entry/entry.ts'
import { SeedMembershipError, SeedNetworkMismatchError, SeedFormatError } from '../errors.ts'
import type { SporeDatabase, SporeBatchOp } from '../store/spore-database.ts'
import type { TierStore } from '../store/tier-store.ts'
import type { SporeMerger } from '../merge/spore-merger.ts'
import type { RejectionReason } from '../merge/rejection.ts'
import type { PrimarySpore } from '../primary/primary-spore.ts'
import type { SporeLogger } from '../logger.ts'
import { decodeSeedFile, encodeSeedFile, MAX_SEED_BYTES, type SeedNode } from './seed-file.ts'

/** Dials the node at `addrs` and resolves true only if the peer that answers is `peerId`. */
export type ConfirmNode = (peerId: string, addrs: string[], signal: AbortSignal) => Promise<boolean>

export interface QuarantinedNode {
  peerId: string
  addrs: string[]
  entries: number
  seedFrom: string
  importedAt: number
}

export interface SeedImportReport {
  network: string
  exporter: string
  exportedAt: number
  primary: { epoch: number, digest: string } | null
  confirmed: string[]
  quarantined: QuarantinedNode[]
  merged: number
  rejected: Partial<Record<RejectionReason, number>>
}

export interface SeedSporeOptions {
  db: SporeDatabase
  store: TierStore
  latent: TierStore
  primary: PrimarySpore
  merger: SporeMerger
  signer: Signer
  network: string
  /** This node's membership certificate chain, carried in exported files. */
  membership: () => Uint8Array
  /** Checks an exporter's membership chain for this network. */
  checkMembership?: (membership: Uint8Array, peerId: string, network: string) => boolean
  clock: () => number
  log: SporeLogger
}

const CONFIRM_TIMEOUT_MS = 10_000
const CONFIRM_PARALLEL = 8

export class SeedSpore {
  private readonly o: SeedSporeOptions

  constructor (options: SeedSporeOptions) {
    this.o = options
  }

  /**
   * Writes a seed file: the given bootstrap nodes (default: this node and every sclerotium
   * the spores know of), their `node` entries, and the latest primary digest.
   */
  async export (file: string, options: { nodes?: SeedNode[] } = {}): Promise<{ nodes: number, entries: number }> {
    const nodeEntries = new Map<string, SignedEntry>()
    for (const tier of [this.o.latent, this.o.store]) {
      for await (const e of tier.entries('node')) nodeEntries.set(e.key, e)
    }
    const primaryEpoch = await this.o.primary.latestEpoch()
    for (const e of primaryEpoch?.entries ?? []) if (e.type === 'node') nodeEntries.set(e.key, e)
    let nodes = options.nodes
    if (nodes === undefined) {
      nodes = []
      for (const e of nodeEntries.values()) {
        const v = (e as SignedEntry<'node'>).value
        if (e.key === this.o.signer.peerId || v.role === 'sclerotium') nodes.push({ peerId: e.key, addrs: v.addrs })
      }
    }
    const entries = nodes.flatMap(n => nodeEntries.has(n.peerId) ? [(nodeEntries.get(n.peerId) as SignedEntry).bytes] : [])
    const latest = this.o.primary.latest()
    const bytes = encodeSeedFile(this.o.signer, {
      network: this.o.network,
      exportedAt: this.o.clock(),
      membership: this.o.membership(),
      primary: latest === undefined ? null : { epoch: latest.header.epoch, digest: latest.digest },
      nodes,
      entries
    })
    const tmp = `${file}.${process.pid}.tmp`
    await writeFile(tmp, bytes, { mode: 0o600 })
    await rename(tmp, file)
    return { nodes: nodes.length, entries: entries.length }
  }

  async import (file: string, confirm: ConfirmNode, options: { signal?: AbortSignal, confirmTimeoutMs?: number } = {}): Promise<SeedImportReport> {
    let data: Uint8Array
    try {
      if ((await stat(file)).size > MAX_SEED_BYTES + 12) throw new SeedFormatError('seed file is too large')
      data = new Uint8Array(await readFile(file))
    } catch (err) {
      if (err instanceof SeedFormatError) throw err
      throw new SeedFormatError(`cannot read seed file: ${(err as Error).message}`)
    }
    const seed = decodeSeedFile(data)
    if (seed.network !== this.o.network) throw new SeedNetworkMismatchError(`seed file is for network ${seed.network.slice(0, 80)}, this node is in ${this.o.network}`)
    if (this.o.checkMembership !== undefined && !this.o.checkMembership(seed.membership, seed.exporter, this.o.network)) throw new SeedMembershipError(`seed exporter ${seed.exporter} is not a member of this network`)

    const confirmed = new Set<string>()
    const queue = [...seed.nodes]
    const worker = async (): Promise<void> => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
        options.signal?.throwIfAborted()
        const signal = AbortSignal.any([...(options.signal === undefined ? [] : [options.signal]), AbortSignal.timeout(options.confirmTimeoutMs ?? CONFIRM_TIMEOUT_MS)])
        let ok = false
        try {
          ok = await confirm(n.peerId, n.addrs, signal)
        } catch (err) {
          this.o.log.debug({ peer: n.peerId, err: (err as Error).message }, 'seed node not confirmed')
        }
        if (ok) confirmed.add(n.peerId)
      }
    }
    await Promise.all(Array.from({ length: Math.min(CONFIRM_PARALLEL, queue.length) }, worker))
    options.signal?.throwIfAborted()

    const toMerge: Uint8Array[] = []
    const held = new Map<string, Uint8Array[]>()
    for (const bytes of seed.entries) {
      let origin: string
      try {
        origin = decodeEntry(bytes).origin
      } catch {
        toMerge.push(bytes) // rejected and counted by the merger
        continue
      }
      if (confirmed.has(origin)) toMerge.push(bytes)
      else held.set(origin, [...(held.get(origin) ?? []), bytes])
    }
    const outcomes = await this.o.merger.merge('seed', toMerge)
    const rejected: Partial<Record<RejectionReason, number>> = {}
    let merged = 0
    for (const out of outcomes) {
      if (out.status === 'merged') merged++
      else rejected[out.reason] = (rejected[out.reason] ?? 0) + 1
    }

    const now = this.o.clock()
    const addrsOf = new Map(seed.nodes.map(n => [n.peerId, n.addrs]))
    const quarantined: QuarantinedNode[] = []
    const ops: SporeBatchOp[] = []
    for (const peerId of new Set([...seed.nodes.map(n => n.peerId), ...held.keys()])) {
      if (confirmed.has(peerId)) {
        ops.push({ type: 'del', sublevel: this.o.store.buckets.quarantine, key: peerId })
        continue
      }
      const entries = held.get(peerId) ?? []
      const record = { peerId, addrs: addrsOf.get(peerId) ?? [], entries, seedFrom: seed.exporter, importedAt: now }
      ops.push({ type: 'put', sublevel: this.o.store.buckets.quarantine, key: peerId, value: encodeCanonical(record) })
      quarantined.push({ peerId, addrs: record.addrs, entries: entries.length, seedFrom: seed.exporter, importedAt: now })
    }
    await this.o.db.write(ops)
    const report: SeedImportReport = {
      network: seed.network,
      exporter: seed.exporter,
      exportedAt: seed.exportedAt,
      primary: seed.primary === null ? null : { epoch: seed.primary.epoch, digest: toHex(seed.primary.digest) },
      confirmed: [...confirmed].sort(),
      quarantined,
      merged,
      rejected
    }
    this.o.log.info({ exporter: seed.exporter, confirmed: report.confirmed.length, quarantined: quarantined.length, merged }, 'seed file imported')
    return report
  }

  /** Nodes from imported seed files that could not be confirmed yet. */
  async quarantined (): Promise<QuarantinedNode[]> {
    const out: QuarantinedNode[] = []
    for await (const value of this.o.store.buckets.quarantine.values()) {
      const r = decodeCanonical(value) as { peerId: string, addrs: string[], entries: Uint8Array[], seedFrom: string, importedAt: number }
      out.push({ peerId: r.peerId, addrs: r.addrs, entries: r.entries.length, seedFrom: r.seedFrom, importedAt: r.importedAt })
    }
    return out
  }

  /** Tries to confirm quarantined nodes again; merges the entries of those now confirmed. */
  async retryQuarantined (confirm: ConfirmNode, signal?: AbortSignal): Promise<{ confirmed: string[], merged: number }> {
    const confirmedNow: string[] = []
    let merged = 0
    for await (const [key, value] of this.o.store.buckets.quarantine.iterator()) {
      signal?.throwIfAborted()
      const r = decodeCanonical(value) as { peerId: string, addrs: string[], entries: Uint8Array[] }
      let ok = false
      try {
        ok = r.addrs.length > 0 && await confirm(r.peerId, r.addrs, AbortSignal.any([...(signal === undefined ? [] : [signal]), AbortSignal.timeout(CONFIRM_TIMEOUT_MS)]))
      } catch {}
      if (!ok) continue
      const outcomes = await this.o.merger.merge('seed', r.entries)
      merged += outcomes.filter(o => o.status === 'merged').length
      await this.o.db.write([{ type: 'del', sublevel: this.o.store.buckets.quarantine, key }])
      confirmedNow.push(r.peerId)
    }
    return { confirmed: confirmedNow, merged }
  }
}
