// What the page sees of the spores: latent entries as they are gossiped (decoded and
// signature-checked with the spores' own codec before they are shown or forwarded) and the
// primary epochs its sclerotia serve. When the page reaches its first sclerotium it catches
// up: gossip only brings what changes afterwards, so it pulls the entries the sclerotium
// holds (latent-pull.ts) and asks for the latest certified epoch at once.
import type { GossipSub } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
// spores/index.ts also exports the LevelDB stores and seed files (node:fs): the page takes
// the browser-safe wire codecs from their own files
import { decodeEntry, verifyEntrySignature, viewOf, entryId, type EntryView } from '../../spores/entry/entry.ts'
import { decodeEpoch } from '../../spores/primary/epoch.ts'
import { sporeProtocols } from '../../spores/host.ts'
import { encodeCanonical, decodeCanonical, toHex } from '../../crypto/index.ts'
import { protocolPrefix, topicPrefix } from '../../membership/index.ts'
import type { HyphaeLibp2p } from './hyphae-node.ts'
import { pullLatentEntries } from './latent-pull.ts'

const ENTRIES_KEPT = 500
const EPOCHS_KEPT = 20
const MAX_EPOCH_BYTES = 4 * 1024 * 1024
const EPOCH_TIMEOUT_MS = 8_000
const CATCH_UP_TIMEOUT_MS = 20_000

export interface EpochSummary {
  epoch: number
  digest: string
  entries: number
  committee: number
  issuedAt: number
  from: string
}

export class SporeFeed {
  readonly entries = new Map<string, EntryView & { receivedAt: number }>()
  readonly epochs: EpochSummary[] = []
  rejected = 0
  epochSource = 'not asked yet'
  /** where the entries shown before any gossip came from */
  catchUpSource = 'not caught up yet'
  private catchingUp = false
  private caughtUp = false
  private readonly libp2p: HyphaeLibp2p
  private readonly pubsub: GossipSub
  private readonly names: { primary: string, sync: string, gossip: string }
  private readonly onChange: () => void

  constructor (options: { libp2p: HyphaeLibp2p, networkId: string, onChange: () => void }) {
    this.libp2p = options.libp2p
    this.pubsub = options.libp2p.services.pubsub
    this.names = sporeProtocols({ protocolPrefix: protocolPrefix(options.networkId), topicPrefix: topicPrefix(options.networkId) })
    this.onChange = options.onChange
  }

  get topic (): string {
    return this.names.gossip
  }

  start (): void {
    this.pubsub.topicValidators.set(this.names.gossip, async (_peer, message) => this.take(message.data))
    this.pubsub.subscribe(this.names.gossip)
  }

  stop (): void {
    this.pubsub.unsubscribe(this.names.gossip)
    this.pubsub.topicValidators.delete(this.names.gossip)
  }

  private take (data: Uint8Array): any {
    let view: EntryView
    try {
      const entry = decodeEntry(data)
      if (!verifyEntrySignature(entry)) throw new Error('bad signature')
      view = viewOf(entry)
    } catch {
      this.rejected++
      this.onChange()
      return 'reject'
    }
    const id = entryId(view.type, view.key)
    const old = this.entries.get(id)
    if (old === undefined || old.seq < view.seq) {
      this.entries.delete(id)
      this.entries.set(id, { ...view, receivedAt: Date.now() })
      if (this.entries.size > ENTRIES_KEPT) this.entries.delete(this.entries.keys().next().value as string)
      this.onChange()
    }
    // a hyphae reads the spores but does not relay them
    return 'ignore'
  }

  /**
   * Shows the network as it is: the latent entries and the latest epoch `peer` holds. Runs once
   * per page; a failed catch-up is tried again with the next sclerotium that connects.
   */
  async catchUpFrom (peer: PeerId): Promise<void> {
    if (this.caughtUp || this.catchingUp) return
    this.catchingUp = true
    try {
      const [pulled] = await Promise.all([
        pullLatentEntries(this.libp2p, this.names.sync, peer, ENTRIES_KEPT, AbortSignal.timeout(CATCH_UP_TIMEOUT_MS)),
        this.fetchEpochs(peer)
      ])
      for (const bytes of pulled) this.take(bytes)
      this.caughtUp = true
      this.catchUpSource = `${pulled.length} entries from …${peer.toString().slice(-8)}`
    } catch (err) {
      this.catchUpSource = `catch-up with …${peer.toString().slice(-8)} failed: ${(err as Error).message.slice(0, 80)}`
    } finally {
      this.catchingUp = false
      this.onChange()
    }
  }

  /** Asks a sclerotium for primary epochs newer than the last one seen. */
  async fetchEpochs (peer: PeerId, signal = AbortSignal.timeout(EPOCH_TIMEOUT_MS)): Promise<void> {
    let stream
    try {
      stream = await this.libp2p.dialProtocol(peer, this.names.primary, { signal })
    } catch (err) {
      this.epochSource = /protocol selection|negotiate/i.test((err as Error).message)
        ? `…${peer.toString().slice(-8)} serves no primary epochs yet`
        : `epoch request to …${peer.toString().slice(-8)} failed: ${(err as Error).message.slice(0, 80)}`
      this.onChange()
      return
    }
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_EPOCH_BYTES })
      await lp.write(encodeCanonical({ have: this.epochs.at(-1)?.epoch ?? null }), { signal })
      const response = decodeCanonical((await lp.read({ signal })).subarray()) as { epoch?: unknown }
      await stream.close({ signal })
      this.epochSource = `from …${peer.toString().slice(-8)}`
      if (response?.epoch instanceof Uint8Array) {
        const epoch = decodeEpoch(response.epoch)
        if (this.epochs.at(-1)?.epoch !== epoch.header.epoch) {
          this.epochs.push({ epoch: epoch.header.epoch, digest: toHex(epoch.digest).slice(0, 16), entries: epoch.entries.length, committee: epoch.header.committee.length, issuedAt: epoch.header.issuedAt, from: peer.toString() })
          if (this.epochs.length > EPOCHS_KEPT) this.epochs.shift()
        }
      }
      this.onChange()
    } catch (err) {
      stream.abort(err as Error)
      this.epochSource = `epoch request failed: ${(err as Error).message.slice(0, 80)}`
      this.onChange()
    }
  }
}
