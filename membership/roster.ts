// Roster exchange: right after two members connect, each tells the other its role and
// addresses and which other members it is connected to, so a node that joined through one
// bootstrap peer finds the rest of the network in one round trip instead of waiting for
// DHT walks.
//
// A roster comes from a member, but a member can lie: every peer it names must come with
// its membership certificate chain, checked here against the network's root key, expiry
// and revocation before anything is kept or dialled. A made-up peer has no certificate, so
// a member can only point at real members (and at most MAX_ADDRS addresses of each).
// A peer that asks again and again is answered at most once per MIN_INTERVAL_MS.
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, PeerId, Stream, Connection } from '@libp2p/interface'
import { encodeCanonical, decodeCanonical } from '../crypto/index.ts'
import { decodeEncodedChain, encodeChain, type CertificateChain } from './certificate.ts'
import { MembershipError } from './errors.ts'
import type { MemberLog } from './member-log.ts'

/** What a roster message may name: older members send up to this many. */
export const ROSTER_MAX_PEERS = 256
/** What this member sends in one roster: a page (sclerotia first, then the next slice of the rest). */
export const ROSTER_PAGE_PEERS = 64
const MAX_ADDRS = 8
const MAX_ROLE_CHARS = 32
const MAX_MESSAGE_BYTES = 512 * 1024
const EXCHANGE_TIMEOUT_MS = 5_000
export const ROSTER_MIN_INTERVAL_MS = 1_000
const ANSWERED_KEPT = 1_024

export class InvalidRosterError extends MembershipError {
  readonly name = 'InvalidRosterError'
}

export interface RosterEntry {
  peerId: string
  addrs: string[]
  role?: string
  /** the peer's membership chain, leaf first: proof that it is a member at all */
  chain?: CertificateChain
}

export interface Presence {
  role: string
  addrs: string[]
}

export interface RosterMessage {
  me: Presence
  peers: RosterEntry[]
}

/**
 * One page of a roster: the sclerotia first (what a newcomer needs to find its place), then
 * the next slice of the others from `cursor` on, so a roster stays one bounded message
 * however large the network and repeated exchanges walk everybody. Returns the next cursor.
 */
export function rosterPage (all: RosterEntry[], cursor: number, size = ROSTER_PAGE_PEERS): { page: RosterEntry[], next: number } {
  if (all.length <= size) return { page: all, next: cursor }
  const sclerotia = all.filter(e => e.role === 'sclerotium').slice(0, Math.floor(size / 2))
  const others = all.filter(e => e.role !== 'sclerotium')
  const room = size - sclerotia.length
  const start = others.length === 0 ? 0 : cursor % others.length
  const slice = [...others.slice(start, start + room), ...others.slice(0, Math.max(0, start + room - others.length))]
  return { page: [...sclerotia, ...slice], next: start + room }
}

export function rosterProtocol (protocolPrefix: string): string {
  return `${protocolPrefix}/roster/2.0.0`
}

function validAddrs (value: unknown): string[] {
  if (!Array.isArray(value)) return []
  return value.filter((a): a is string => typeof a === 'string' && a.length < 512 && a.startsWith('/')).slice(0, MAX_ADDRS).filter(a => { try { multiaddr(a); return true } catch { return false } })
}

/** An entry whose chain does not decode is dropped, not the whole roster. */
function decodeChain (value: unknown): CertificateChain | undefined {
  try {
    return decodeEncodedChain(value)
  } catch {
    return undefined
  }
}

export function encodeRoster (message: RosterMessage): Uint8Array {
  return encodeCanonical({
    me: message.me,
    peers: message.peers.slice(0, ROSTER_MAX_PEERS).map(p => ({ peerId: p.peerId, addrs: p.addrs.slice(0, MAX_ADDRS), ...(p.role === undefined ? {} : { role: p.role }), ...(p.chain === undefined ? {} : { chain: encodeChain(p.chain) }) }))
  })
}

/** Decodes the shape; entries without a decodable chain are dropped here, chains are checked by the caller. */
export function decodeRoster (bytes: Uint8Array): RosterMessage {
  let raw: Record<string, any>
  try {
    raw = decodeCanonical(bytes) as Record<string, any>
  } catch (err) {
    throw new InvalidRosterError(`roster message is not decodable: ${(err as Error).message}`)
  }
  const me = raw?.me
  if (me === null || typeof me !== 'object' || typeof me.role !== 'string' || me.role.length > MAX_ROLE_CHARS) throw new InvalidRosterError('roster message is malformed')
  if (raw.peers !== undefined && (!Array.isArray(raw.peers) || raw.peers.length > ROSTER_MAX_PEERS)) throw new InvalidRosterError(`roster names more than ${ROSTER_MAX_PEERS} peers`)
  const peers: RosterEntry[] = []
  for (const p of (raw.peers ?? []) as any[]) {
    if (typeof p?.peerId !== 'string' || p.peerId.length > 128) continue
    try { peerIdFromString(p.peerId) } catch { continue }
    const chain = decodeChain(p.chain)
    if (chain === undefined) continue
    peers.push({ peerId: p.peerId, addrs: validAddrs(p.addrs), role: typeof p.role === 'string' ? p.role.slice(0, MAX_ROLE_CHARS) : undefined, chain })
  }
  return { me: { role: me.role, addrs: validAddrs(me.addrs) }, peers }
}

export interface RosterOptions {
  libp2p: Libp2p
  protocol: string
  presence: () => Presence
  /** Members this node is connected to, with their chains, to pass on. */
  connectedMembers: () => RosterEntry[]
  /** True when the chain proves `peerId` a current member; entries that fail are dropped. */
  vouch: (peerId: string, chain: CertificateChain) => boolean
  /** One roster heard from `from`: its own presence and the members it vouched for. */
  onRoster: (from: string, presence: Presence, entries: RosterEntry[]) => void
  log: MemberLog
  now?: () => number
}

export class Roster {
  private readonly options: RosterOptions
  private readonly answered = new Map<string, number>()
  /** entries dropped because their certificate did not prove membership */
  unvouched = 0
  /** inbound exchanges refused for coming too often */
  throttled = 0

  constructor (options: RosterOptions) {
    this.options = options
  }

  async start (): Promise<void> {
    await this.options.libp2p.handle(this.options.protocol, (stream, connection) => { void this.answer(stream, connection) }, { runOnLimitedConnection: true })
  }

  async stop (): Promise<void> {
    await this.options.libp2p.unhandle(this.options.protocol).catch(() => {})
  }

  private message (): Uint8Array {
    return encodeRoster({ me: this.options.presence(), peers: this.options.connectedMembers() })
  }

  /** At most one answer per peer per interval: a roster costs signature checks to read. */
  private admitInbound (peerId: string): boolean {
    const now = this.options.now?.() ?? Date.now()
    const last = this.answered.get(peerId)
    if (last !== undefined && now - last < ROSTER_MIN_INTERVAL_MS) return false
    this.answered.delete(peerId)
    this.answered.set(peerId, now)
    if (this.answered.size > ANSWERED_KEPT) this.answered.delete(this.answered.keys().next().value as string)
    return true
  }

  private async answer (stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString()
    if (!this.admitInbound(from)) {
      this.throttled++
      stream.abort(new InvalidRosterError('roster asked too often'))
      return
    }
    const signal = AbortSignal.timeout(EXCHANGE_TIMEOUT_MS)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      const theirs = decodeRoster((await lp.read({ signal })).subarray())
      await lp.write(this.message(), { signal })
      await stream.close({ signal })
      this.take(from, theirs)
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'roster exchange (inbound) failed')
      stream.abort(err as Error)
    }
  }

  /** Asks a connected member for its roster. */
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

  private take (from: string, message: RosterMessage): void {
    const vouched = message.peers.filter(e => e.chain !== undefined && this.options.vouch(e.peerId, e.chain))
    this.unvouched += message.peers.length - vouched.length
    this.options.onRoster(from, message.me, vouched)
  }
}
