// A member of the network that misbehaves, in its own process: it joins the network with an
// invite like any node (its home holds a real certificate), connects with real libp2p and the
// membership handshake, and gossips bad entries on the latent topic. Run by daemon.test.ts:
//   node test/spores/byzantine-member.ts --home H --window-ms W --flood N --victim PEERID ADDR...
// It prints a JSON report of what it sent, one count per expected rejection reason. With
// --linger it then stays connected until its stdin closes, so the test can see how the
// honest nodes now judge it.
// With --relay FILE it only relays the entries in FILE (hex, one a line) and prints its peer id:
// a member passing on what another key signed (identity.test.ts: a revoked member's entries).
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeCanonical, decodeCanonical, sign, randomSecretKey, randomBytesOf } from '../../crypto/index.ts'
import { Home } from '../../node/home/index.ts'
import { membershipEncrypter, topicPrefix } from '../../membership/index.ts'
import { signEntry, signerOf, sporeProtocols, type Signer, type EntryType } from '../../spores/index.ts'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { home: { type: 'string' }, 'window-ms': { type: 'string' }, flood: { type: 'string' }, victim: { type: 'string' }, relay: { type: 'string' }, linger: { type: 'boolean' } }
})
const home = new Home(values.home as string)
const network = home.loadNetwork()
const chain = home.loadChain()
if (network === undefined || chain === undefined) throw new Error(`${home.dir} is not a member of a network`)
const privateKey = await home.loadOrCreateNodeKey()
const me = signerOf(privateKey.raw.subarray(0, 32))
const windowMs = Number(values['window-ms'])
const flood = Number(values.flood)
const victim = values.victim as string
const topic = sporeProtocols({ protocolPrefix: '', topicPrefix: topicPrefix(network.networkId) }).gossip

const libp2p = await createLibp2p({
  privateKey,
  addresses: { listen: [] },
  transports: [tcp()],
  connectionEncrypters: [membershipEncrypter({
    networkId: network.networkId,
    rootPublicKey: network.rootPublicKey,
    credentials: () => ({ kind: 'member', chain }),
    isRevoked: () => false,
    now: () => Date.now()
  })],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false, globalSignaturePolicy: 'StrictSign' }) }
})
await libp2p.start()
const pubsub = libp2p.services.pubsub as GossipSub
let captured: Uint8Array | undefined
pubsub.addEventListener('message', (evt) => {
  if (evt.detail.topic === topic && captured === undefined) captured = evt.detail.data
})
pubsub.subscribe(topic)
for (const addr of positionals) await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(15_000) })

async function until (what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}
await until('the honest nodes to subscribe', () => pubsub.getSubscribers(topic).length >= positionals.length)
if (values.relay !== undefined) {
  for (const line of readFileSync(values.relay, 'utf8').split('\n').filter(l => l.trim() !== '')) await pubsub.publish(topic, Uint8Array.from(Buffer.from(line.trim(), 'hex')))
  await new Promise(resolve => setTimeout(resolve, 3000))
  process.stdout.write(JSON.stringify({ peerId: me.peerId }) + '\n')
  await libp2p.stop()
  process.exit(0)
}
// an honest node's entry seen on the topic, to replay later
await until('an honest entry on the topic', () => captured !== undefined)

const sent: Record<string, number> = {}
async function send (reason: string, bytes: Uint8Array): Promise<void> {
  await pubsub.publish(topic, bytes)
  sent[reason] = (sent[reason] ?? 0) + 1
}

/** Signs whatever body it is given: a well-formed envelope around a body of the Byzantine's choosing. */
function envelope (signer: Signer, body: Record<string, unknown>): Uint8Array {
  const encoded = encodeCanonical(body)
  return encodeCanonical([encoded, sign(signer.secretKey, encoded)])
}

const now = Date.now()
const forgedNode = { addrs: ['/ip4/6.6.6.6/tcp/666'], role: 'sclerotium', hardware: { cores: 64 } }
const health = (issuedAt: number, extra: { expiresAt?: number } = {}) =>
  signEntry(me, { type: 'health', key: me.peerId, value: { status: 'ok', load: 0, memFreeMiB: 1 }, seq: issuedAt, issuedAt, ...extra })

// forged: claims to come from the victim, signed with the Byzantine's key
await send('bad-signature', envelope(me, { type: 'node', key: victim, value: forgedNode, origin: victim, seq: now, issuedAt: now }))
// tampered: a valid entry whose body was changed after signing
{
  const valid = health(now)
  const [body, sig] = decodeCanonical(valid.bytes) as [Uint8Array, Uint8Array]
  const changed = decodeCanonical(body) as Record<string, any>
  changed.value.load = 99
  await send('bad-signature', encodeCanonical([encodeCanonical(changed), sig]))
}
// other origin: correctly signed by the Byzantine, but about another node's key
await send('unauthorized-origin', signEntry(me, { type: 'node', key: victim, value: forgedNode, seq: now, issuedAt: now }).bytes)
await send('unauthorized-origin', signEntry(me, { type: 'service', key: `${victim}/web`, value: { name: 'web', endpoints: ['/ip4/6.6.6.6/tcp/80'] }, seq: now, issuedAt: now }).bytes)
// a key that is not a member of the network
const outsider = signerOf(randomSecretKey())
await send('unknown-origin', signEntry(outsider, { type: 'node', key: outsider.peerId, value: forgedNode, seq: now, issuedAt: now }).bytes)
// replay: an honest entry every node already holds
await send('replay', captured as Uint8Array)
// oversized and malformed input
await send('oversized', randomBytesOf(80 * 1024))
await send('malformed', randomBytesOf(200))
// a correctly signed body that does not match its type's schema
await send('schema', envelope(me, { type: 'node', key: me.peerId, value: { addrs: 'everywhere' }, origin: me.peerId, seq: now, issuedAt: now }))
// time: expired, issued in the future, issued before the window
await send('expired', health(now - 10_000, { expiresAt: now - 5_000 }).bytes)
await send('future', health(now + 3_600_000).bytes)
await send('outside-window', health(now - windowMs - 3_600_000).bytes)
// a flood of valid records of one type, beyond its share of the type (and the type's limit)
const type: EntryType = 'service'
for (let i = 0; i < flood; i++) {
  await send('flood', signEntry(me, { type, key: `${me.peerId}/flood-${i}`, value: { name: `flood-${i}`, endpoints: [`/ip4/10.0.0.1/tcp/${1000 + i}`] }, seq: now + i, issuedAt: now }).bytes)
}
// let gossipsub hand the last messages over before the connections close
await new Promise(resolve => setTimeout(resolve, 3000))
process.stdout.write(JSON.stringify({ peerId: me.peerId, outsider: outsider.peerId, sent }) + '\n')
if (values.linger === true) {
  process.stdin.resume()
  await new Promise(resolve => process.stdin.once('end', resolve))
}
await libp2p.stop()
