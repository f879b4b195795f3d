// Creating a network, issuing invites and admitting members: the administrative side of
// network identity, on nodes that hold the network root key.
import { hostname } from 'node:os'
import { getPublicKey, randomSecretKey, randomBytesOf, publicKeyOfPeerId } from '../../crypto/index.ts'
import { issueCertificate, networkIdOf, encodeInvite, checkAdmissionProof, AdmissionRefusedError, type AdmissionRequest, type CertificateChain, type EpochAnchor } from '../../membership/index.ts'
import { Home, InviteBook, MemberBook, HomeError, type NetworkInfo } from '../home/index.ts'

export const MEMBER_CERTIFICATE_TTL_MS = 365 * 24 * 3600_000

export function defaultNetworkName (): string {
  return hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60) || 'mycelium'
}

/** Creates a network with this node as its first member; refuses if the home already has one. */
export async function createNetwork (home: Home, name: string, now = Date.now()): Promise<NetworkInfo> {
  if (!/^[A-Za-z0-9._-]{1,60}$/.test(name)) throw new HomeError('network name must be 1-60 letters, digits, dots, dashes or underscores')
  const existing = home.loadNetwork()
  if (existing !== undefined) throw new HomeError(`this home is already a member of network ${existing.name} (${existing.networkId}); use another --home`)
  const nodeKey = await home.loadOrCreateNodeKey()
  const rootSecret = randomSecretKey()
  const rootPublicKey = getPublicKey(rootSecret)
  const info: NetworkInfo = { networkId: networkIdOf(rootPublicKey), name, rootPublicKey }
  home.createRootKey(rootSecret)
  const own = issueCertificate({ networkId: info.networkId, issuerSecretKey: rootSecret, issuerPublicKey: rootPublicKey, subject: nodeKey.publicKey.raw, capabilities: ['issuer', 'member'], issuedAt: now, ttlMs: MEMBER_CERTIFICATE_TTL_MS })
  home.saveChain([own])
  new MemberBook(home).record(own)
  home.saveNetwork(info)
  return info
}

export interface InviteOptions {
  ttlMs: number
  uses: number
  bootstrap: string[]
  /** lifetime of the certificate the invitee gets (default MEMBER_CERTIFICATE_TTL_MS) */
  certificateTtlMs?: number
  /** admits only this key */
  forPeerId?: string
  /** the latest certified primary epoch, the new node's starting point for the primary spore */
  epochAnchor?: EpochAnchor
}

export function createInvite (home: Home, options: InviteOptions, now = Date.now()): string {
  const network = home.loadNetwork()
  if (network === undefined) throw new HomeError('this node is in no network yet: run `mycelium network create <name>` or `mycelium join <invite>`')
  if (home.loadRootKey(network) === undefined) throw new HomeError(`this node does not hold the root key of network ${network.name}; create invites on its administrator node`)
  if (options.bootstrap.length === 0) throw new HomeError('no address to put in the invite: start the daemon first (`mycelium start`) or pass --bootstrap')
  const id = randomBytesOf(16)
  const secret = randomBytesOf(32)
  const expiresAt = now + options.ttlMs
  new InviteBook(home).add({ id, secret, createdAt: now, expiresAt, usesLeft: options.uses, certificateTtlMs: options.certificateTtlMs, forPeerId: options.forPeerId }, now)
  return encodeInvite({ networkId: network.networkId, networkName: network.name, rootPublicKey: network.rootPublicKey, bootstrap: options.bootstrap, id, secret, expiresAt, ...(options.epochAnchor === undefined ? {} : { epochAnchor: options.epochAnchor }) })
}

/** The inviter's side of admission: checks the proof, uses the invite once, signs a certificate. */
export function admitter (home: Home, network: NetworkInfo, now: () => number): ((request: AdmissionRequest) => Promise<CertificateChain>) | undefined {
  const rootSecret = home.loadRootKey(network)
  if (rootSecret === undefined) return undefined
  const book = new InviteBook(home)
  return async (request) => {
    const invite = book.find(request.inviteId)
    if (invite === undefined) throw new AdmissionRefusedError('invite is no longer valid: the administrator invalidated it (network rotate-invites) or it was issued by another node; ask for a new invite')
    if (!checkAdmissionProof(request.proof, invite.secret, invite.id, network.networkId, request.joinerPeerId, request.inviterPeerId)) throw new AdmissionRefusedError('invite secret does not match')
    if (invite.forPeerId !== undefined && invite.forPeerId !== request.joinerPeerId) throw new AdmissionRefusedError('invite was issued for another key')
    const outcome = book.consume(request.inviteId, now())
    if (outcome === 'expired') throw new AdmissionRefusedError('invite has expired')
    if (outcome === 'used') throw new AdmissionRefusedError('invite was already used')
    if (outcome !== 'ok') throw new AdmissionRefusedError('invite is unknown to the inviter')
    const subject = publicKeyOfPeerId(request.joinerPeerId)
    const certificate = issueCertificate({ networkId: network.networkId, issuerSecretKey: rootSecret, issuerPublicKey: network.rootPublicKey, subject, capabilities: ['member'], issuedAt: now(), ttlMs: invite.certificateTtlMs ?? MEMBER_CERTIFICATE_TTL_MS })
    new MemberBook(home).record(certificate)
    return [certificate]
  }
}
