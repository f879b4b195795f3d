// Joining a network with an invite: a short-lived libp2p host that carries admission
// credentials instead of a certificate, dials the inviter, and keeps the certificate it
// is issued. The home gets the network files only once admission has succeeded.
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeInvite, membershipEncrypter, InvalidInviteError, AdmissionRefusedError, type CertificateChain } from '../../membership/index.ts'
import { Home, HomeError, type NetworkInfo } from '../home/index.ts'

export interface JoinResult {
  network: NetworkInfo
  peerId: string
  via: string
}

export async function joinNetwork (home: Home, token: string, options: { signal?: AbortSignal, now?: number } = {}): Promise<JoinResult> {
  const invite = decodeInvite(token)
  if (invite.expiresAt <= (options.now ?? Date.now())) throw new InvalidInviteError(`invite expired at ${new Date(invite.expiresAt).toISOString()}; ask for a new one`)
  const existing = home.loadNetwork()
  if (existing !== undefined) throw new HomeError(`this home is already a member of network ${existing.name} (${existing.networkId}); use another --home to join a second network`)
  const privateKey = await home.loadOrCreateNodeKey()

  let issued: CertificateChain | undefined
  let refusal: AdmissionRefusedError | undefined
  const libp2p = await createLibp2p({
    privateKey,
    addresses: { listen: [] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [membershipEncrypter({
      networkId: invite.networkId,
      rootPublicKey: invite.rootPublicKey,
      credentials: () => issued === undefined ? { kind: 'admission', inviteId: invite.id, secret: invite.secret } : { kind: 'member', chain: issued },
      isRevoked: () => false,
      now: () => Date.now(),
      onAdmitted: async (chain) => { issued = chain },
      onRejected: (_peer, _reason, error) => { if (error instanceof AdmissionRefusedError) refusal = error }
    })],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false }
  })
  await libp2p.start()
  const failures: string[] = []
  try {
    for (const addr of invite.bootstrap) {
      try {
        await libp2p.dial(multiaddr(addr), { signal: options.signal ?? AbortSignal.timeout(15_000) })
      } catch (err) {
        // an admission refusal is final (used, expired, wrong secret); other errors: try the next address
        if (refusal !== undefined) throw refusal
        failures.push(`${addr}: ${(err as Error).message}`)
        continue
      }
      if (issued === undefined) throw new AdmissionRefusedError('the inviter accepted the connection but issued no certificate')
      const network: NetworkInfo = { networkId: invite.networkId, name: invite.networkName, rootPublicKey: invite.rootPublicKey }
      home.saveChain(issued)
      home.saveBootstrap(invite.bootstrap)
      if (invite.epochAnchor !== undefined) home.saveEpochAnchor(invite.epochAnchor)
      home.saveNetwork(network)
      return { network, peerId: libp2p.peerId.toString(), via: addr }
    }
    throw new AdmissionRefusedError(`could not reach any bootstrap address of the invite:\n  ${failures.join('\n  ')}`)
  } finally {
    await libp2p.stop()
  }
}
