// The first primary epoch. Its certificate is the network root's signature, so only a node
// that holds the root key (the network's administrator node) can write it; it records the
// sclerotia it sees as the candidates of the first committee. Every other node fetches it
// from a peer through the spores' epoch service.
import { buildHeader, certifyEpoch, encodeEpoch, type Spores } from '../../spores/index.ts'
import { peerIdOfPublicKey, getPublicKey } from '../../crypto/index.ts'

export function writeGenesis (spores: Spores, options: { network: string, rootSecretKey: Uint8Array, candidates: string[], now: number }): Promise<void> {
  const genesis = buildHeader({ network: options.network, epoch: 0, prev: null, entries: [], committee: [...options.candidates].sort(), issuedAt: options.now })
  const root = { peerId: peerIdOfPublicKey(getPublicKey(options.rootSecretKey)), secretKey: options.rootSecretKey }
  return spores.primary.accept(encodeEpoch(genesis.headerBytes, certifyEpoch(genesis.digest, [root]), [])).then(() => undefined)
}
