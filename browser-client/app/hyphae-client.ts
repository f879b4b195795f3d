// A browser tab as a hyphae member: it holds its own key, joins with an invite link (or comes
// back with the certificate it kept), stays homed on two sclerotia, learns the network from
// their rosters, talks on a gossip topic, reads the spores, and opens direct WebRTC links to
// other pages through a sclerotium relay.
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, PrivateKey } from '@libp2p/interface'
import { toBase64Url, fromBase64Url } from '../../crypto/index.ts'
import { decodeInvite, MemberHost, quietLog, type CertificateChain, type Invite, type RejectedConnection } from '../../membership/index.ts'
import { createHyphaeNode, type HyphaeLibp2p } from './hyphae-node.ts'
import { SclerotiumHomes, browserDialable, isHomeConnection, short, type SclerotiumCandidate } from './sclerotium-homes.ts'
import { MemberMap } from './member-map.ts'
import { AppChat, PAGE_CHAT_TOPIC } from './app-chat.ts'
import { SporeFeed } from './spore-feed.ts'
import { RevocationWatch } from './revocation-watch.ts'
import { MEMBERSHIP_STORAGE_KEY, NODE_KEY_STORAGE_KEY, decodeStoredMembership, encodeStoredMembership, type StoredMembership } from './stored-membership.ts'

export const HYPHAE_ROLE = 'hyphae'
const HOMES = 2
const REFRESH_MS = 3_000
const EPOCH_POLL_MS = 10_000
const MAX_DIRECT_PAGES = 8
const EVENTS_KEPT = 50

export type Phase = 'not-a-member' | 'joining' | 'connecting' | 'online' | 'refused' | 'revoked'

export interface ClientEvent {
  at: number
  text: string
}

export interface PeerLink {
  peerId: string
  role: string
  /** remote addresses of the open connections to this peer */
  addrs: string[]
  kind: 'ws' | 'webrtc' | 'relay' | 'none'
}

interface KeyValueStore {
  getItem: (key: string) => string | null
  setItem: (key: string, value: string) => void
}

export class HyphaeClient extends EventTarget {
  peerId = ''
  networkId = ''
  networkName = ''
  certificateExpiresAt?: number
  /** why the page cannot take part, when it cannot */
  problem = ''
  readonly members = new MemberMap()
  readonly events: ClientEvent[] = []
  libp2p?: HyphaeLibp2p
  chat?: AppChat
  spores?: SporeFeed
  homes?: SclerotiumHomes
  revocations?: RevocationWatch
  private readonly storage: KeyValueStore
  private fatal = false
  private key?: PrivateKey
  private revoked = false
  private joining = false
  private lastRefusal = ''
  private chain?: CertificateChain
  private membership?: StoredMembership
  private readonly pageDials = new Map<string, number>()
  private timers: Array<ReturnType<typeof setInterval>> = []
  private memberHost?: MemberHost
  private unstoredSeen = 0

  constructor (storage: KeyValueStore) {
    super()
    this.storage = storage
  }

  get phase (): Phase {
    if (this.revoked) return 'revoked'
    if (this.fatal) return this.joining ? 'refused' : 'not-a-member'
    if ((this.homes?.homes().length ?? 0) > 0) return 'online'
    if (this.joining) return 'joining'
    return this.lastRefusal !== '' ? 'refused' : 'connecting'
  }

  /** Starts from an invite (the `#invite=` part of the URL) or from the membership kept in storage. */
  async start (inviteToken?: string): Promise<void> {
    const key = await this.loadKey()
    this.key = key
    this.peerId = peerIdFromPrivateKey(key).toString()
    const invite = inviteToken === undefined ? undefined : this.usableInvite(inviteToken)
    let stored: StoredMembership | undefined
    try {
      const text = this.storage.getItem(MEMBERSHIP_STORAGE_KEY)
      if (text !== null) stored = decodeStoredMembership(text)
    } catch (err) {
      this.note(`stored membership ignored: ${(err as Error).message}`)
    }
    const storedValid = stored !== undefined && stored.chain[0].expiresAt > Date.now()
    if (invite !== undefined && (!storedValid || stored?.networkId !== invite.networkId)) {
      this.membership = { networkId: invite.networkId, networkName: invite.networkName, rootPublicKey: invite.rootPublicKey, chain: [], sclerotia: invite.bootstrap.filter(browserDialable) }
      this.joining = true
      this.note(`joining ${invite.networkName} with an invite link`)
    } else if (stored !== undefined && storedValid) {
      this.membership = stored
      this.chain = stored.chain
      this.certificateExpiresAt = stored.chain[0].expiresAt
    } else {
      this.fatal = true
      this.problem = stored !== undefined
        ? `this page's certificate expired at ${new Date(stored.chain[0].expiresAt).toLocaleString()}: ask the operator for a new invite link (mycelium network invite --browser)`
        : 'this page is not a member of any network: open it with an invite link (mycelium network invite --browser), or ask the operator to let it join'
      if (stored !== undefined) { this.networkId = stored.networkId; this.networkName = stored.networkName }
      this.changed()
      return
    }
    await this.begin(key, this.membership, invite)
  }

  /** True while the page is no member and has not started: it may ask to join. */
  get canAskToJoin (): boolean {
    return this.fatal && !this.joining && !this.revoked && this.libp2p === undefined && this.key !== undefined
  }

  /** Joins with an invite obtained after start (an approved join request). */
  async joinWith (inviteToken: string): Promise<void> {
    if (!this.canAskToJoin || this.key === undefined) throw new Error('this page is already taking part')
    const invite = this.usableInvite(inviteToken)
    if (invite === undefined) return
    this.fatal = false
    this.problem = ''
    this.membership = { networkId: invite.networkId, networkName: invite.networkName, rootPublicKey: invite.rootPublicKey, chain: [], sclerotia: invite.bootstrap.filter(browserDialable) }
    this.joining = true
    this.note(`joining ${invite.networkName}: the operator approved this page`)
    await this.begin(this.key, this.membership, invite)
  }

  private usableInvite (token: string): Invite | undefined {
    try {
      const invite = decodeInvite(token)
      if (invite.expiresAt <= Date.now()) throw new Error(`the invite link expired at ${new Date(invite.expiresAt).toLocaleString()}`)
      return invite
    } catch (err) {
      this.note(`invite not usable: ${(err as Error).message}`)
      return undefined
    }
  }

  private async begin (key: PrivateKey, membership: StoredMembership, invite?: Invite): Promise<void> {
    this.networkId = membership.networkId
    this.networkName = membership.networkName
    for (const addr of membership.sclerotia) {
      const id = multiaddr(addr).getComponents().findLast(c => c.name === 'p2p')?.value
      if (id !== undefined) this.members.assume(id, 'sclerotium', [addr])
    }
    await this.startNode(key, membership, invite)
  }

  private async startNode (key: PrivateKey, membership: StoredMembership, invite?: Invite): Promise<void> {
    const members = new MemberHost({
      networkId: membership.networkId,
      rootPublicKey: membership.rootPublicKey,
      credentials: () => this.chain !== undefined
        ? { kind: 'member', chain: this.chain }
        : { kind: 'admission', inviteId: invite!.id, secret: invite!.secret },
      isRevoked: (peerId) => this.revocations?.has(peerId) === true,
      onAdmitted: async (chain) => { this.admitted(chain) },
      presence: () => ({ role: HYPHAE_ROLE, addrs: this.reachableAddrs() }),
      // relayed links to other pages carry no roster: the sclerotia's rosters are the map
      rosterOnLimited: false,
      log: quietLog
    })
    this.memberHost = members
    members.onRejected((r) => { this.rejected(r) })
    // the roster reports the sender's presence, then the members it is connected to
    members.onRoster((from, presence, entries) => {
      this.members.heardFrom(from, presence, entries.filter(e => this.revocations?.has(e.peerId) !== true))
      this.dialPages()
      this.changed()
    })
    this.revocations = new RevocationWatch({ networkId: membership.networkId, rootPublicKey: membership.rootPublicKey, self: this.peerId, onRevoked: (peerId) => { this.revokedMember(peerId) } })
    const libp2p = await createHyphaeNode({ privateKey: key, membership: members.policy, isVerified: (peer) => members.isVerified(peer.toString()), reservations: HOMES })
    this.libp2p = libp2p
    await libp2p.start()
    await this.revocations.start(libp2p)
    await members.attach(libp2p)
    this.chat = new AppChat({ pubsub: libp2p.services.pubsub, networkId: membership.networkId, name: PAGE_CHAT_TOPIC, self: this.peerId, onChange: () => { this.changed() } })
    this.chat.start()
    this.spores = new SporeFeed({ libp2p, networkId: membership.networkId, onChange: () => { this.changed() } })
    this.spores.start()
    this.homes = new SclerotiumHomes({
      libp2p,
      target: HOMES,
      candidates: () => this.sclerotiumCandidates(),
      onEvent: (text) => { this.note(text) },
      onChange: () => { this.changed() }
    })
    this.homes.start()
    // the first sclerotium reached shows the page the network as it is; gossip brings only what changes
    libp2p.addEventListener('connection:open', (evt) => { if (isHomeConnection(evt.detail)) void this.spores?.catchUpFrom(evt.detail.remotePeer) })
    libp2p.addEventListener('connection:open', () => { this.changed() })
    libp2p.addEventListener('connection:close', () => { this.changed() })
    libp2p.addEventListener('self:peer:update', () => { this.refreshRosters() })
    this.timers.push(setInterval(() => { this.refresh() }, REFRESH_MS))
    this.timers.push(setInterval(() => { void this.fetchEpochs() }, EPOCH_POLL_MS))
    this.changed()
  }

  private admitted (chain: CertificateChain): void {
    this.chain = chain
    this.joining = false
    this.certificateExpiresAt = chain[0].expiresAt
    this.membership = { ...this.membership!, chain }
    this.save()
    this.note(`admitted: certificate valid until ${new Date(chain[0].expiresAt).toLocaleString()}`)
  }

  private rejected ({ peerId, reason, kind, byPeer }: RejectedConnection): void {
    this.lastRefusal = `${short(peerId)}: ${reason}`
    this.note(`refused by ${short(peerId)}: ${reason}`)
    this.homes?.refusedBy(peerId)
    // sclerotia hang up on a revoked member at once, often before it hears the revocation:
    // their refusal on the next dial is how it learns
    if (byPeer && kind === 'revoked') {
      this.revokedMember(this.peerId)
      return
    }
    // an invite is single-use: a refused admission will not succeed on a retry
    if (kind === 'admission' || this.joining) {
      this.fatal = true
      this.problem = `the invite was refused: ${reason}`
      this.homes?.stop()
    }
    this.changed()
  }

  private revokedMember (peerId: string): void {
    if (peerId !== this.peerId) {
      this.members.members.delete(peerId)
      this.note(`member ${short(peerId)} was revoked by the network administrator`)
      return
    }
    this.fatal = true
    this.revoked = true
    this.problem = 'the network administrator revoked this page\'s membership'
    this.homes?.stop()
    this.note('this page was revoked')
    void this.libp2p?.stop()
  }

  /** Sends a message on the page's gossip topic. */
  async send (text: string): Promise<number> {
    if (this.chat === undefined) throw new Error('not connected')
    return await this.chat.send(text)
  }

  links (): PeerLink[] {
    const libp2p = this.libp2p
    if (libp2p === undefined) return []
    const byPeer = new Map<string, Connection[]>()
    for (const connection of libp2p.getConnections()) {
      const id = connection.remotePeer.toString()
      byPeer.set(id, [...(byPeer.get(id) ?? []), connection])
    }
    const ids = new Set([...byPeer.keys(), ...this.members.members.keys()])
    ids.delete(this.peerId)
    return [...ids].map((peerId) => {
      const connections = byPeer.get(peerId) ?? []
      const addrs = connections.map(c => c.remoteAddr.toString())
      const kind = connections.length === 0
        ? 'none'
        : connections.some(c => c.remoteAddr.toString().includes('/webrtc'))
          ? 'webrtc'
          : connections.some(isHomeConnection) ? 'ws' : 'relay'
      return { peerId, role: this.members.members.get(peerId)?.role ?? 'unknown', addrs, kind }
    })
  }

  /** The page's own relayed WebRTC addresses, for other pages to dial. */
  reachableAddrs (): string[] {
    return (this.libp2p?.getMultiaddrs() ?? []).map(a => a.toString()).filter(a => a.includes('/p2p-circuit/webrtc')).slice(0, 8)
  }

  private sclerotiumCandidates (): SclerotiumCandidate[] {
    return this.members.withRole('sclerotium').map(m => ({ peerId: m.peerId, addrs: m.addrs.filter(browserDialable) }))
  }

  private refresh (): void {
    const libp2p = this.libp2p
    if (libp2p === undefined) return
    const connected = new Set(libp2p.getPeers().map(p => p.toString()))
    this.members.forget(Date.now(), undefined, connected)
    const unstored = this.revocations?.unstored ?? 0
    if (unstored > this.unstoredSeen) {
      this.note(`${unstored - this.unstoredSeen} revocations not kept: this page's revocation list is full`)
      this.unstoredSeen = unstored
    }
    this.refreshRosters()
    this.dialPages()
    this.save()
    this.changed()
  }

  private refreshRosters (): void {
    this.memberHost?.refreshRosters()
  }

  /** Direct WebRTC links to other pages: the page with the smaller peer id dials. */
  private dialPages (): void {
    const libp2p = this.libp2p
    if (libp2p === undefined || this.chain === undefined) return
    const direct = this.links().filter(l => l.role === HYPHAE_ROLE && l.kind === 'webrtc').length
    let budget = MAX_DIRECT_PAGES - direct
    const now = Date.now()
    for (const m of this.members.withRole(HYPHAE_ROLE)) {
      if (budget <= 0) break
      if (m.peerId === this.peerId || this.peerId > m.peerId || (this.pageDials.get(m.peerId) ?? 0) > now) continue
      if (libp2p.getConnections(peerIdFromString(m.peerId)).some(c => c.remoteAddr.toString().includes('/webrtc'))) continue
      const addr = m.addrs.find(a => a.includes('/p2p-circuit/webrtc'))
      if (addr === undefined) continue
      budget--
      this.pageDials.set(m.peerId, now + 15_000)
      void libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(12_000) }).then(
        () => { this.note(`direct WebRTC link to page ${short(m.peerId)}`) },
        (err: Error) => { this.note(`WebRTC link to page ${short(m.peerId)} failed: ${err.message.slice(0, 120)}`) }
      )
    }
  }

  private async fetchEpochs (): Promise<void> {
    const home = this.homes?.homes()[0]
    if (home !== undefined) await this.spores?.fetchEpochs(peerIdFromString(home))
  }

  private save (): void {
    if (this.membership === undefined || this.chain === undefined) return
    const sclerotia = this.sclerotiumCandidates().flatMap(c => c.addrs).slice(0, 16)
    this.membership = { ...this.membership, chain: this.chain, sclerotia: sclerotia.length > 0 ? sclerotia : this.membership.sclerotia }
    this.storage.setItem(MEMBERSHIP_STORAGE_KEY, encodeStoredMembership(this.membership))
  }

  private async loadKey (): Promise<PrivateKey> {
    const text = this.storage.getItem(NODE_KEY_STORAGE_KEY)
    if (text !== null) {
      try {
        return privateKeyFromProtobuf(fromBase64Url(text))
      } catch {
        this.note('the stored key was unreadable: a new one was made')
      }
    }
    const key = await generateKeyPair('Ed25519')
    this.storage.setItem(NODE_KEY_STORAGE_KEY, toBase64Url(privateKeyToProtobuf(key)))
    return key
  }

  /** Signs with the page's own key: an approved join request is handed only to its holder. */
  async sign (data: Uint8Array): Promise<Uint8Array> {
    if (this.key === undefined) throw new Error('the page has no key yet')
    return await this.key.sign(data)
  }

  note (text: string): void {
    this.events.push({ at: Date.now(), text })
    if (this.events.length > EVENTS_KEPT) this.events.shift()
    this.changed()
  }

  private changed (): void {
    this.dispatchEvent(new Event('change'))
  }

  async stop (): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    this.homes?.stop()
    this.chat?.stop()
    this.spores?.stop()
    this.revocations?.stop()
    await this.memberHost?.detach()
    await this.libp2p?.stop()
  }
}
