// A hyphae keeps connections to at least two sclerotia so that losing one never cuts it off.
// It reacts to the disconnect event itself (not only to a poll), so failing over to another
// sclerotium takes one dial, well inside five seconds.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import type { RoleHost, RoleLogger } from '../role-host.ts'

export interface AnchorCandidate {
  peerId: string
  addrs: string[]
  score: number
}

export interface AnchorKeeperOptions {
  host: Pick<RoleHost, 'peerId' | 'getConnections' | 'dial' | 'addEventListener' | 'removeEventListener'>
  /** The sclerotia this node knows of (from the role view). */
  sclerotia: () => AnchorCandidate[]
  /** How many anchors to keep (default 2). */
  anchors?: number
  dialTimeoutMs?: number
  /** Safety-net poll; disconnects are handled as they happen. */
  checkIntervalMs?: number
  /** A sclerotium that could not be dialled is not tried again for this long. */
  retryAfterMs?: number
  log: RoleLogger
  onChange?: (anchors: string[]) => void
}

export class AnchorKeeper {
  private readonly options: AnchorKeeperOptions
  private readonly want: number
  private readonly failedAt = new Map<string, number>()
  private timer?: NodeJS.Timeout
  private running = false
  private refreshing?: Promise<void>
  private again = false
  private last: string[] = []
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    if (this.last.includes(id) || this.options.sclerotia().some(c => c.peerId === id)) void this.refresh()
  }

  constructor (options: AnchorKeeperOptions) {
    this.options = options
    this.want = options.anchors ?? 2
  }

  start (): void {
    if (this.running) return
    this.running = true
    this.options.host.addEventListener('peer:disconnect', this.onDisconnect)
    this.timer = setInterval(() => { void this.refresh() }, this.options.checkIntervalMs ?? 2_000)
    this.timer.unref()
    void this.refresh()
  }

  stop (): void {
    if (!this.running) return
    this.running = false
    this.options.host.removeEventListener('peer:disconnect', this.onDisconnect)
    clearInterval(this.timer)
    this.last = []
  }

  /** Connected sclerotia right now. */
  anchors (): string[] {
    return this.connectedSclerotia().map(c => c.peerId)
  }

  private connected (peerId: string): boolean {
    try {
      return this.options.host.getConnections(peerIdFromString(peerId)).some(c => c.status === 'open')
    } catch {
      return false
    }
  }

  private connectedSclerotia (): AnchorCandidate[] {
    const self = this.options.host.peerId.toString()
    return this.options.sclerotia().filter(c => c.peerId !== self && this.connected(c.peerId))
  }

  /** Tops anchors up to the wanted number; concurrent calls coalesce. */
  async refresh (): Promise<void> {
    if (!this.running) return
    if (this.refreshing !== undefined) {
      this.again = true
      return await this.refreshing
    }
    this.refreshing = (async () => {
      do {
        this.again = false
        await this.topUp()
      } while (this.again && this.running)
    })()
    try {
      await this.refreshing
    } finally {
      this.refreshing = undefined
    }
  }

  private async topUp (): Promise<void> {
    const now = Date.now()
    const retryAfter = this.options.retryAfterMs ?? 10_000
    const self = this.options.host.peerId.toString()
    let connected = this.connectedSclerotia()
    const candidates = this.options.sclerotia()
      .filter(c => c.peerId !== self && !this.connected(c.peerId) && now - (this.failedAt.get(c.peerId) ?? -Infinity) >= retryAfter)
      .sort((a, b) => b.score - a.score || (a.peerId < b.peerId ? -1 : 1))
    while (connected.length < this.want && candidates.length > 0 && this.running) {
      const batch = candidates.splice(0, this.want - connected.length)
      await Promise.all(batch.map(async c => { await this.dial(c) }))
      connected = this.connectedSclerotia()
    }
    const ids = connected.map(c => c.peerId)
    if (ids.join() !== this.last.join()) {
      this.last = ids
      this.options.log.info({ anchors: ids }, ids.length >= this.want ? 'anchored to sclerotia' : 'fewer anchors than wanted')
      this.options.onChange?.(ids)
    }
  }

  private async dial (candidate: AnchorCandidate): Promise<void> {
    const signal = AbortSignal.timeout(this.options.dialTimeoutMs ?? 3_000)
    try {
      const peer = peerIdFromString(candidate.peerId)
      const addrs: Multiaddr[] = candidate.addrs.map(a => multiaddr(a)).map(a => a.getComponents().some(c => c.name === 'p2p') ? a : a.encapsulate(`/p2p/${candidate.peerId}`))
      await this.options.host.dial(addrs.length > 0 ? addrs : peer, { signal })
      this.failedAt.delete(candidate.peerId)
    } catch (err) {
      this.failedAt.set(candidate.peerId, Date.now())
      if (this.failedAt.size > 1024) this.failedAt.delete(this.failedAt.keys().next().value as string)
      this.options.log.debug({ peer: candidate.peerId, err: (err as Error).message }, 'could not reach a sclerotium')
    }
  }
}
