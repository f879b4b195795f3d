// Multi-homing: a hyphae keeps WebSocket connections to `target` sclerotia at once, so losing
// one leaves the page online while it dials a replacement. Candidates come from the invite,
// from storage and from every roster the page receives.
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, PeerId } from '@libp2p/interface'
import type { HyphaeLibp2p } from './hyphae-node.ts'

const TICK_MS = 1_000
const DIAL_TIMEOUT_MS = 6_000
const RETRY_AFTER_FAILURE_MS = 4_000
const RETRY_AFTER_REFUSAL_MS = 30_000

export interface SclerotiumCandidate {
  peerId: string
  /** dialable from a browser: /ws or /wss with /p2p/ */
  addrs: string[]
}

export interface SclerotiumHomesOptions {
  libp2p: HyphaeLibp2p
  target: number
  candidates: () => SclerotiumCandidate[]
  onEvent: (text: string) => void
  onChange: () => void
}

/** A connection a page can keep as its home link: direct WebSocket, not relayed. */
export function isHomeConnection (connection: Connection): boolean {
  const addr = connection.remoteAddr.toString()
  return connection.status === 'open' && connection.limits === undefined && !addr.includes('/p2p-circuit') && (addr.includes('/ws') || addr.includes('/wss'))
}

export function browserDialable (addr: string): boolean {
  return !addr.includes('/p2p-circuit') && !addr.includes('/webrtc') && /\/(ws|wss|tls\/ws)(\/|$)/.test(addr) && addr.includes('/p2p/')
}

export class SclerotiumHomes {
  private readonly options: SclerotiumHomesOptions
  private readonly notBefore = new Map<string, number>()
  private readonly dialing = new Set<string>()
  private readonly known = new Set<string>()
  private timer?: ReturnType<typeof setInterval>
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    if (this.known.delete(id)) {
      this.options.onEvent(`lost sclerotium ${short(id)}; failing over`)
      this.options.onChange()
      void this.tick()
    }
  }

  constructor (options: SclerotiumHomesOptions) {
    this.options = options
  }

  start (): void {
    this.options.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.timer = setInterval(() => { void this.tick() }, TICK_MS)
    void this.tick()
  }

  stop (): void {
    clearInterval(this.timer)
    this.options.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
  }

  /** Sclerotia the page is connected to now, by peer id. */
  homes (): string[] {
    const ids = new Set(this.options.candidates().map(c => c.peerId))
    const out: string[] = []
    for (const connection of this.options.libp2p.getConnections()) {
      const id = connection.remotePeer.toString()
      if (ids.has(id) && isHomeConnection(connection) && !out.includes(id)) out.push(id)
    }
    return out
  }

  /** Delays the next dial of a peer that refused the page's membership. */
  refusedBy (peerId: string): void {
    this.notBefore.set(peerId, Date.now() + RETRY_AFTER_REFUSAL_MS)
  }

  private async tick (): Promise<void> {
    const homes = this.homes()
    for (const id of homes) {
      if (!this.known.has(id)) {
        this.known.add(id)
        this.options.onEvent(`homed on sclerotium ${short(id)}`)
        this.options.onChange()
      }
    }
    const missing = this.options.target - homes.length - this.dialing.size
    if (missing <= 0) return
    const now = Date.now()
    const candidates = this.options.candidates()
      .filter(c => !homes.includes(c.peerId) && !this.dialing.has(c.peerId) && (this.notBefore.get(c.peerId) ?? 0) <= now)
      .filter(c => c.addrs.some(browserDialable))
    for (const candidate of candidates.slice(0, missing)) void this.dial(candidate)
  }

  private async dial (candidate: SclerotiumCandidate): Promise<void> {
    this.dialing.add(candidate.peerId)
    try {
      for (const addr of candidate.addrs.filter(browserDialable)) {
        try {
          await this.options.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
          return
        } catch {}
      }
      if (!this.notBefore.has(candidate.peerId) || (this.notBefore.get(candidate.peerId) ?? 0) < Date.now()) {
        this.notBefore.set(candidate.peerId, Date.now() + RETRY_AFTER_FAILURE_MS)
      }
    } finally {
      this.dialing.delete(candidate.peerId)
      void this.tick()
    }
  }
}

export function short (peerId: string): string {
  return peerId.length > 12 ? `…${peerId.slice(-8)}` : peerId
}
