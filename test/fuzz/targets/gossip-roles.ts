// Gossip and roles: bridged application messages (a documented `undefined` for anything
// malformed), signed role advertisements (the advertisement re-signed so mutations reach its
// checks), and the probe protocol's request, header and dial-back frames.
import { encodeCanonical, sign } from '../../../crypto/index.ts'
import { encodeBridgedMessage, decodeBridgedMessage, type BridgedMessage } from '../../../node/gossip/bridged-message.ts'
import { encodeRoleAdvertisement, decodeRoleAdvertisement, encodeProbeRequest, decodeProbeRequest, type RoleAdvertisement } from '../../../roles/index.ts'
import { encodeHeader, decodeHeader, encodeDialBackResults, decodeDialBackResults, MAX_CONTROL_FRAME } from '../../../roles/measure/probe-messages.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { decode as cborgDecode } from 'cborg'
import { rejectionOf, type FuzzTarget } from '../engine/target.ts'
import { keyOf, NOW, text } from './fixtures.ts'

const bridge = keyOf('bridge')
const origin = keyOf('origin')
const bridged: BridgedMessage[] = [
  { topic: 'chat', originNetwork: 'mycabcdefghijklmnopqrst', originPeer: origin.peerId, data: text('hello from the other side'), bridge: bridge.peerId },
  { topic: 'sensors/temp', originNetwork: 'myczzzzzzzzzzzzzzzzzzzz', originPeer: origin.peerId, data: new Uint8Array(0), bridge: bridge.peerId }
]
const MAGIC_LENGTH = encodeBridgedMessage(bridged[0], bridge.secretKey).length - encodeCanonical(bodyOf(bridged[0])).length

function bodyOf (m: BridgedMessage): Record<string, unknown> {
  const signed = encodeCanonical({ ctx: 'mycelium-bridged-v1', topic: m.topic, origin: m.originNetwork, from: m.originPeer, data: m.data, bridge: m.bridge })
  return { topic: m.topic, origin: m.originNetwork, from: m.originPeer, data: m.data, bridge: m.bridge, sig: sign(bridge.secretKey, signed) }
}

export const bridgedMessageTarget: FuzzTarget = {
  name: 'bridged-message',
  what: 'node/gossip/bridged-message.ts decodeBridgedMessage',
  layers: [
    { name: 'message', structure: 'binary', seeds: bridged.map(m => encodeBridgedMessage(m, bridge.secretKey)) },
    // the CBOR after the magic prefix, framed again
    { name: 'body', structure: 'cbor', seeds: bridged.map(m => encodeCanonical(bodyOf(m))), wrap: (body) => { const out = new Uint8Array(MAGIC_LENGTH + body.length); out.set(encodeBridgedMessage(bridged[0], bridge.secretKey).subarray(0, MAGIC_LENGTH)); out.set(body, MAGIC_LENGTH); return out } }
  ],
  decode: decodeBridgedMessage,
  rejected: (m) => m === undefined,
  // one message, one encoding: unknown fields are refused, and Ed25519 signatures are deterministic
  reencode: (m) => encodeBridgedMessage(m as BridgedMessage, bridge.secretKey),
  canonical: true
}

const TOPIC = 'mycelium/mycabcdefghijklmnopqrst/roles'
const node = keyOf('node')
const ads: RoleAdvertisement[] = [
  { peerId: node.peerId, role: 'sclerotium', dedicated: true, pinned: true, score: 88, fit: 'preferred', movable: false, seq: 12, issuedAt: NOW, addrs: ['/ip4/10.0.0.5/tcp/7700', '/ip4/10.0.0.5/tcp/7701/ws'] },
  { peerId: node.peerId, role: 'hyphae', dedicated: false, pinned: false, score: 0, fit: 'unfit', movable: true, seq: 0, issuedAt: 0, addrs: [] }
]

/** Signs a (mutated) advertisement map as the node would, so the field checks are reached. */
function signedAd (adBytes: Uint8Array): Uint8Array {
  const ad = decodeLenient(adBytes)
  return encodeCanonical({ ad, sig: sign(node.secretKey, encodeCanonical({ domain: 'mycelium/role-advertisement/v1', topic: TOPIC, ad })) })
}

function decodeLenient (bytes: Uint8Array): unknown {
  // any CBOR the mutation produced; a value cborg cannot read goes in as bytes
  try {
    return cborgDecode(bytes)
  } catch {
    return bytes
  }
}

export const roleAdvertisementTarget: FuzzTarget = {
  name: 'role-advertisement',
  what: 'roles/balance/role-advertisement.ts decodeRoleAdvertisement',
  layers: [
    { name: 'advertisement', structure: 'cbor', seeds: ads.map(ad => encodeRoleAdvertisement(ad, node.secretKey, TOPIC)) },
    { name: 'fields', structure: 'cbor', seeds: ads.map(ad => encodeCanonical(ad)), wrap: signedAd }
  ],
  decode: (bytes) => decodeRoleAdvertisement(bytes, TOPIC),
  reencode: (ad) => encodeRoleAdvertisement(ad as RoleAdvertisement, node.secretKey, TOPIC),
  canonical: true
}

export const probeRequestTarget: FuzzTarget = {
  name: 'probe-request',
  what: 'roles/measure/probe-messages.ts decodeProbeRequest',
  layers: [{
    name: 'request',
    structure: 'cbor',
    seeds: [encodeProbeRequest({ op: 'echo', rounds: 4 }), encodeProbeRequest({ op: 'download', bytes: 65536 }), encodeProbeRequest({ op: 'dialback', addrs: [multiaddr('/ip4/1.2.3.4/tcp/7700'), multiaddr('/ip6/::1/udp/7700/quic-v1')] })]
  }],
  maxBytes: MAX_CONTROL_FRAME,
  // addresses as text: a Multiaddr object holds caches that differ between equal addresses
  decode: (bytes) => {
    const r = decodeProbeRequest(bytes)
    return r.op === 'dialback' ? { op: 'dialback', addrs: r.addrs.map(a => a.toString()) } : r
  },
  // not signed, so not canonical: an address comes back in its normal form
  reencode: (r) => {
    const v = r as { op: string, addrs?: string[] }
    return v.op === 'dialback' ? encodeProbeRequest({ op: 'dialback', addrs: (v.addrs ?? []).map(a => multiaddr(a)) }) : encodeProbeRequest(r as Parameters<typeof encodeProbeRequest>[0])
  }
}

export const probeHeaderTarget: FuzzTarget = {
  name: 'probe-replies',
  what: 'roles/measure/probe-messages.ts decodeHeader and decodeDialBackResults',
  layers: [{
    name: 'reply',
    structure: 'cbor',
    seeds: [encodeHeader({ ok: true }), encodeHeader({ refused: 'busy' }), encodeDialBackResults([{ addr: '/ip4/1.2.3.4/tcp/7700', reachable: true }, { addr: '/ip4/1.2.3.5/tcp/7700', reachable: false, error: 'timeout' }])]
  }],
  maxBytes: MAX_CONTROL_FRAME,
  // the two replies share the stream; whichever the bytes are, one of them must take it or refuse it by name
  decode: (bytes) => {
    try {
      return decodeHeader(bytes)
    } catch (err) {
      if (rejectionOf(err) === undefined) throw err
      return decodeDialBackResults(bytes)
    }
  }
}

export const gossipRoleTargets = [bridgedMessageTarget, roleAdvertisementTarget, probeRequestTarget, probeHeaderTarget]
