// A member of the network that lies in its rosters, in its own process: it joins with an
// invite like any node, connects to the daemons named on the command line with the real
// membership handshake, and sends each four rosters of 256 made-up peers (no certificate, a
// certificate of its own under another peer id, a certificate of another network), one a
// second apart. Run by network.test.ts:
//   node test/node/roster-liar.ts --home H ADDR...
// It prints { peerId, fakes: [peer ids it made up] }.
import { parseArgs } from 'node:util'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { getPublicKey, randomSecretKey } from '../../crypto/index.ts'
import { Home } from '../../node/home/index.ts'
import { membershipEncrypter, encodeRoster, rosterProtocol, protocolPrefix, issueCertificate, networkIdOf, type RosterEntry } from '../../membership/index.ts'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { home: { type: 'string' } } })
const home = new Home(values.home as string)
const network = home.loadNetwork()
const chain = home.loadChain()
if (network === undefined || chain === undefined) throw new Error(`${home.dir} is not a member of a network`)
const privateKey = await home.loadOrCreateNodeKey()

const libp2p = await createLibp2p({
  privateKey,
  addresses: { listen: [] },
  transports: [tcp()],
  connectionEncrypters: [membershipEncrypter({ networkId: network.networkId, rootPublicKey: network.rootPublicKey, credentials: () => ({ kind: 'member', chain }), isRevoked: () => false, now: () => Date.now() })],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false }
})
await libp2p.start()

const otherRoot = randomSecretKey()
const otherNetwork = networkIdOf(getPublicKey(otherRoot))
const fakes: string[] = []
const rosters: RosterEntry[][] = []
for (let r = 0; r < 4; r++) {
  const peers: RosterEntry[] = []
  for (let i = 0; i < 256; i++) {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    fakes.push(peerId)
    const addrs = Array.from({ length: 16 }, (_, k) => `/ip4/10.${r}.${i}.${k}/tcp/4001`)
    if (i % 3 === 0) peers.push({ peerId, addrs })
    else if (i % 3 === 1) peers.push({ peerId, addrs, chain })
    else peers.push({ peerId, addrs, chain: [issueCertificate({ networkId: otherNetwork, issuerSecretKey: otherRoot, issuerPublicKey: getPublicKey(otherRoot), subject: key.publicKey.raw, capabilities: ['member'], issuedAt: Date.now(), ttlMs: 3_600_000 })] })
  }
  rosters.push(peers)
}

const protocol = rosterProtocol(protocolPrefix(network.networkId))
for (const addr of positionals) {
  const connection = await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(15_000) })
  for (const peers of rosters) {
    // the daemon answers one roster a second per peer (its own exchange came first)
    await new Promise(resolve => setTimeout(resolve, 1_100))
    try {
      const stream = await libp2p.dialProtocol(connection.remotePeer, protocol, { signal: AbortSignal.timeout(5_000) })
      const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
      await lp.write(encodeRoster({ me: { role: 'sclerotium', addrs: ['/ip4/127.0.0.1/tcp/9'] }, peers }))
      await lp.read({ signal: AbortSignal.timeout(5_000) })
      await stream.close()
    } catch {}
  }
}
process.stdout.write(JSON.stringify({ peerId: peerIdFromPrivateKey(privateKey).toString(), fakes }) + '\n')
await libp2p.stop()
process.exit(0)
