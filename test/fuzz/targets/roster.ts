// The roster message: its decoder, then the certificate check every named peer must pass
// (as MemberHost does before anything is kept or dialled).
import { issueCertificate, networkIdOf, encodeRoster, decodeRoster, verifyChain, type RosterMessage } from '../../../membership/index.ts'
import { peerIdOfPublicKey } from '../../../crypto/index.ts'
import type { FuzzTarget } from '../engine/target.ts'
import { keyOf, NOW } from './fixtures.ts'

const root = keyOf('network-root')
const networkId = networkIdOf(root.publicKey)
const HOUR = 3600_000
/** The roster stream's frame limit (membership/roster.ts MAX_MESSAGE_BYTES). */
const ROSTER_FRAME_BYTES = 512 * 1024

const members = ['roster-a', 'roster-b', 'roster-c'].map(keyOf)
const entries = members.map((k, i) => ({
  peerId: peerIdOfPublicKey(k.publicKey),
  addrs: [`/ip4/10.0.0.${i + 1}/tcp/7700`, `/ip4/10.0.0.${i + 1}/tcp/7701/ws`],
  role: i === 0 ? 'sclerotium' : 'rhizomorph',
  chain: [issueCertificate({ networkId, issuerSecretKey: root.secretKey, issuerPublicKey: root.publicKey, subject: k.publicKey, capabilities: ['member'], issuedAt: NOW - HOUR, ttlMs: 24 * HOUR })]
}))

const seeds: RosterMessage[] = [
  { me: { role: 'sclerotium', addrs: ['/ip4/10.0.0.9/tcp/7700'] }, peers: entries },
  { me: { role: 'hyphae', addrs: [] }, peers: [] },
  { me: { role: 'bridge', addrs: [] }, peers: entries.slice(0, 1) }
]

export const rosterTarget: FuzzTarget = {
  name: 'roster',
  what: 'membership/roster.ts decodeRoster, then verifyChain for every entry as MemberHost vouches',
  layers: [{ name: 'roster', structure: 'cbor', seeds: seeds.map(encodeRoster) }],
  maxBytes: ROSTER_FRAME_BYTES,
  decode: (bytes) => {
    const roster = decodeRoster(bytes)
    for (const e of roster.peers) {
      try {
        verifyChain(e.chain!, { networkId, rootPublicKey: root.publicKey, now: NOW, isRevoked: () => false })
      } catch (err) {
        // an entry that fails is dropped, never an error of the whole roster: only named errors may come out
        if (!(err instanceof Error) || ['Error', 'TypeError', 'RangeError', 'SyntaxError'].includes(err.name)) throw err
      }
    }
    return roster
  },
  // not canonical: entries that do not decode are dropped, unknown fields ignored
  reencode: (roster) => encodeRoster(roster as RosterMessage)
}
