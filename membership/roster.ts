// Roster exchange: right after two members connect, each tells the other its role and
// addresses and which other members it is connected to, so a node that joined through one
// bootstrap peer finds the rest of the network in one round trip instead of waiting for
// DHT walks. Everything received is bounded and validated before use.
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, PeerId, Stream, Connection } from '@libp2p/interface'
import { encodeCanonical, decodeCanonical } from '../crypto/index.ts'
import type { MemberLog } from './member-log.ts'

const MAX_PEERS = 256
const MAX_ADDRS = 16
const MAX_MESSAGE_BYTES = 256 * 1024
const EXCHANGE_TIMEOUT_MS = 5_000

export interface RosterEntry {
  peerId: string
  addrs: string[]
  role?: string
}

export interface Presence {
  role: string
  addrs: string[]
}

interface RosterMessage {
  me: Presence
  peers: RosterEntry[]
}

function validAddrs (value: unknown): string[] {
  if (!Array.isArray(value)) return []
  return value.filter((a): a is string => typeof a === 'string' && a.length < 512 && a.startsWith('/')).slice(0, MAX_ADDRS).filter(a => { try { multiaddr(a); return true } catch { return false } })
}

function decodeRoster (bytes: Uint8Array): RosterMessage {
  const raw = decodeCanonical(bytes) as Record<string, any>
  const me = raw?.me
  if (me === null || typeof me !== 'object' || typeof me.role !== 'string' || me.role.length > 32) throw new Error('roster message is malformed')
  const peers: RosterEntry[] = []
  if (Array.isArray(raw.peers)) {
    for (const p of raw.peers.slice(0, MAX_PEERS)) {
      if (typeof p?.peerId !== 'string') continue
      try { peerIdFromString(p.peerId) } catch { continue }
      peers.push({ peerId: p.peerId, addrs: validAddrs(p.addrs), role: typeof p.role === 'string' ? p.role.slice(0, 32) : undefined })
    }
  }
  return { me: { role: me.role, addrs: validAddrs(me.addrs) }, peers }
}

export interface RosterOptions {
  libp2p: Libp2p
  protocol: string
  presence: () => Presence
  /** Members this node is connected to, to pass on. */
  connectedMembers: () => RosterEntry[]
  onPresence: (peerId: string, presence: Presence) => void
  onLearned: (entries: RosterEntry[]) => void
  log: MemberLog
}

export class Roster {
  private readonly options: RosterOptions

  constructor (options: RosterOptions) {
    this.options = options
  }

  async start (): Promise<void> {
    await this.options.libp2p.handle(this.options.protocol, (stream, connection) => { void this.answer(stream, connection) }, { runOnLimitedConnection: true })
  }

  private message (): Uint8Array {
    return encodeCanonical({ me: this.options.presence(), peers: this.options.connectedMembers().slice(0, MAX_PEERS) })
  }

  private async answer (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      const theirs = decodeRoster((await lp.read({ signal })).subarray())
      await lp.write(this.message(), { signal })
      await stream.close({ signal })
      this.take(connection.remotePeer.toString(), theirs)
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'roster exchange (inbound) failed')
      stream.abort(err as Error)
    }
  }

  /** Asks a freshly connected member for its roster. */
  async exchange (peer: PeerId): Promise<void> {
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    let stream: Stream | undefined
    try {
      stream = await this.options.libp2p.dialProtocol(peer, this.options.protocol, { signal, runOnLimitedConnection: true })
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      await lp.write(this.message(), { signal })
      const theirs = decodeRoster((await lp.read({ signal })).subarray())
      await stream.close({ signal })
      this.take(peer.toString(), theirs)
    } catch (err) {
      this.options.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'roster exchange failed')
      stream?.abort(err as Error)
    }
  }

  private take (peerId: string, message: RosterMessage): void {
    this.options.onPresence(peerId, message.me)
    this.options.onLearned(message.peers)
  }
}
