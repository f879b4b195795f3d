// The membership handshake runs inside the noise channel, right after the noise handshake
// and before stream multiplexing. A peer that cannot prove membership of the same network
// never gets a multiplexed connection, so it never sees a gossip message, a DHT record or a
// spore. The encrypter's protocol id carries the network id: a node of another network
// already fails multistream negotiation.
import { noise } from '@libp2p/noise'
import { lpStream } from '@libp2p/utils'
import type { ComponentLogger, ConnectionEncrypter, MessageStream, PeerId, PrivateKey, SecureConnectionOptions, SecuredConnection, Upgrader, Metrics } from '@libp2p/interface'
import { encodeCanonical, decodeCanonical } from '../crypto/index.ts'
import { decodeEncodedChain, encodeChain, verifyChain, type CertificateChain } from './certificate.ts'
import { admissionProof } from './invite.ts'
import { AdmissionRefusedError, MembershipRefusedError, MembershipError, NetworkMismatchError, REJECTION_KINDS, rejectionKind, type RejectionKind } from './errors.ts'
import { protocolPrefix } from './network-id.ts'

export const MEMBERSHIP_TIMEOUT_MS = 5_000
const MAX_MESSAGE_BYTES = 16 * 1024

export type MembershipCredentials =
  | { kind: 'member', chain: CertificateChain }
  | { kind: 'admission', inviteId: Uint8Array, secret: Uint8Array }

export interface AdmissionRequest {
  joinerPeerId: string
  inviterPeerId: string
  inviteId: Uint8Array
  proof: Uint8Array
}

/** What the handshake needs from the node: who we are, whom we trust, what we record. */
export interface MembershipPolicy {
  networkId: string
  rootPublicKey: Uint8Array
  credentials: () => MembershipCredentials
  isRevoked: (peerId: string) => boolean
  now: () => number
  /** Inviter side: checks an admission request and returns the new member's chain, or throws AdmissionRefusedError. */
  admit?: (request: AdmissionRequest) => Promise<CertificateChain>
  /** Joiner side: the certificate the inviter issued. */
  onAdmitted?: (chain: CertificateChain) => Promise<void>
  onVerified?: (peerId: string, chain: CertificateChain) => void
  onRejected?: (peerId: string, reason: string, error: Error) => void
}

/** The first frame each side sends (exported for the fuzz harness; nothing else uses it). */
export type Hello =
  | { t: 'member', chain: CertificateChain }
  | { t: 'admission', inviteId: Uint8Array, proof: Uint8Array }
export type Verdict =
  | { t: 'ok' }
  | { t: 'admitted', chain: CertificateChain }
  | { t: 'refused', reason: string, kind: RejectionKind }

export function encodeHello (networkId: string, hello: Hello): Uint8Array {
  return hello.t === 'member'
    ? encodeCanonical({ t: 'member', net: networkId, chain: encodeChain(hello.chain) })
    : encodeCanonical({ t: 'admission', net: networkId, id: hello.inviteId, proof: hello.proof })
}

export function encodeVerdict (verdict: Verdict): Uint8Array {
  if (verdict.t === 'admitted') return encodeCanonical({ t: 'admitted', chain: encodeChain(verdict.chain) })
  return encodeCanonical(verdict)
}

export function decodeHello (bytes: Uint8Array, networkId: string): Hello {
  const raw = decodeCanonical(bytes) as Record<string, unknown>
  if (raw === null || typeof raw !== 'object') throw new MembershipError('membership hello is malformed')
  if (raw.net !== networkId) throw new NetworkMismatchError(`peer belongs to network ${typeof raw.net === 'string' ? raw.net.slice(0, 40) : `of a ${typeof raw.net}`}, not ${networkId}`)
  if (raw.t === 'member') return { t: 'member', chain: decodeEncodedChain(raw.chain) }
  if (raw.t === 'admission' && raw.id instanceof Uint8Array && raw.id.length === 16 && raw.proof instanceof Uint8Array && raw.proof.length === 32) {
    return { t: 'admission', inviteId: raw.id, proof: raw.proof }
  }
  throw new MembershipError('membership hello is malformed')
}

export function decodeVerdict (bytes: Uint8Array): Verdict {
  const raw = decodeCanonical(bytes) as Record<string, unknown>
  if (raw?.t === 'ok') return { t: 'ok' }
  if (raw?.t === 'refused' && typeof raw.reason === 'string') {
    // an older peer sends no kind: its refusal counts as plainly invalid
    const kind = REJECTION_KINDS.find(k => k === raw.kind) ?? 'invalid'
    return { t: 'refused', reason: raw.reason.slice(0, 300), kind }
  }
  if (raw?.t === 'admitted') return { t: 'admitted', chain: decodeEncodedChain(raw.chain) }
  throw new MembershipError('membership verdict is malformed')
}

interface EncrypterComponents {
  privateKey: PrivateKey
  peerId: PeerId
  upgrader: Upgrader
  logger: ComponentLogger
  metrics?: Metrics
}

/**
 * Offered after the network's own protocol: a node of another network negotiates this one,
 * so the handshake can tell it (and record) which network it belongs to before refusing it,
 * instead of failing protocol selection without a reason.
 */
export const ANY_NETWORK_MEMBERSHIP_PROTOCOL = '/mycelium/noise-membership/1.0.0'

/** A connection encrypter: noise, then the membership handshake inside the secure channel. */
export function membershipEncrypter (policy: MembershipPolicy, options: { protocol?: string } = {}): (components: EncrypterComponents) => ConnectionEncrypter {
  return (components) => {
    const inner = noise()(components as any)
    const protocol = options.protocol ?? `${protocolPrefix(policy.networkId)}/noise-membership/1.0.0`
    const run = async (secured: SecuredConnection, options?: SecureConnectionOptions): Promise<SecuredConnection> => {
      const remotePeerId = secured.remotePeer.toString()
      try {
        await exchange(secured.connection, components.peerId.toString(), remotePeerId, policy, options?.signal)
      } catch (err) {
        policy.onRejected?.(remotePeerId, (err as Error).message, err as Error)
        secured.connection.abort(err as Error)
        throw err
      }
      return secured
    }
    return {
      protocol,
      secureInbound: async (connection: MessageStream, options?: SecureConnectionOptions) => run(await inner.secureInbound(connection, options), options),
      secureOutbound: async (connection: MessageStream, options?: SecureConnectionOptions) => run(await inner.secureOutbound(connection, options), options)
    }
  }
}

async function exchange (connection: MessageStream, localPeerId: string, remotePeerId: string, policy: MembershipPolicy, outer?: AbortSignal): Promise<void> {
  const signal = outer === undefined ? AbortSignal.timeout(MEMBERSHIP_TIMEOUT_MS) : AbortSignal.any([outer, AbortSignal.timeout(MEMBERSHIP_TIMEOUT_MS)])
  const lp = lpStream(connection, { maxDataLength: MAX_MESSAGE_BYTES })
  const own = policy.credentials()
  const hello: Hello = own.kind === 'member'
    ? { t: 'member', chain: own.chain }
    : { t: 'admission', inviteId: own.inviteId, proof: admissionProof(own.secret, own.inviteId, policy.networkId, localPeerId, remotePeerId) }

  await lp.write(encodeHello(policy.networkId, hello), { signal })
  let verdict: Verdict
  let verified: CertificateChain | undefined
  let refusal: Error | undefined
  try {
    const remote = decodeHello((await lp.read({ signal })).subarray(), policy.networkId)
    if (remote.t === 'member') {
      const subject = verifyChain(remote.chain, { networkId: policy.networkId, rootPublicKey: policy.rootPublicKey, now: policy.now(), isRevoked: policy.isRevoked })
      // certificates are public (every handshake shows one): only the key they name may use them
      if (subject !== remotePeerId) throw new MembershipError('certificate is for another key')
      verified = remote.chain
      verdict = { t: 'ok' }
    } else {
      if (policy.admit === undefined) throw new AdmissionRefusedError('this node cannot admit new members (it does not hold the network key)')
      const chain = await policy.admit({ joinerPeerId: remotePeerId, inviterPeerId: localPeerId, inviteId: remote.inviteId, proof: remote.proof })
      verified = chain
      verdict = { t: 'admitted', chain }
    }
  } catch (err) {
    refusal = err as Error
    verdict = { t: 'refused', reason: refusal.message, kind: rejectionKind(refusal) }
  }
  await lp.write(encodeVerdict(verdict), { signal })

  if (refusal !== undefined) {
    // Let the refusal reach the peer before the connection is torn down: wait for it to
    // read it and hang up (bounded).
    await lp.read({ signal: AbortSignal.timeout(1_000) }).catch(() => {})
    // our own refusal keeps its class: the node records why by what failed, not by words
    throw refusal
  }

  const theirs = decodeVerdict((await lp.read({ signal })).subarray())
  if (theirs.t === 'refused') {
    throw own.kind === 'admission' ? new AdmissionRefusedError(theirs.reason) : new MembershipRefusedError(`refused by peer: ${theirs.reason}`, theirs.kind)
  }
  if (own.kind === 'admission') {
    if (theirs.t !== 'admitted') throw new AdmissionRefusedError('peer accepted the connection but issued no certificate')
    const leaf = verifyChain(theirs.chain, { networkId: policy.networkId, rootPublicKey: policy.rootPublicKey, now: policy.now() })
    if (leaf !== localPeerId) throw new AdmissionRefusedError('issued certificate is for another key')
    await policy.onAdmitted?.(theirs.chain)
  }
  lp.unwrap()
  if (verified !== undefined) policy.onVerified?.(remotePeerId, verified)
}
