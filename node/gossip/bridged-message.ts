// A message that a bridge carried over from another network. It is wrapped so receivers can
// tell where it came from: the origin network and sender, and the bridge that forwarded it,
// whose signature covers all of it (and who is also the gossip sender). Bridged messages are
// never bridged again, so two bridges can never loop a message between networks.
//
// The wrapper's signature only proves which member sent it; any member can write one. What
// lets a receiver show the message as another network's is the grant it carries: the
// receiving network's root key allowing that bridge to speak for that origin network
// (membership/bridge-grant.ts). A wrapper without a valid grant is its sender's own message.
import { encodeCanonical, decodeCanonical, sign, verify, publicKeyOfPeerId } from '../../crypto/index.ts'
import { decodeBridgeGrant, grantAdmits, InvalidBridgeGrantError } from '../../membership/index.ts'

const MAGIC = new TextEncoder().encode('\u0000mycelium-bridged-v1\u0000')
const BRIDGED_FIELDS = new Set(['topic', 'origin', 'from', 'data', 'bridge', 'grant', 'sig'])

export interface BridgedMessage {
  /** the application topic name, the same on both sides */
  topic: string
  originNetwork: string
  originPeer: string
  data: Uint8Array
  /** the bridge's peer id in the network the message was forwarded into */
  bridge: string
  /** the encoded bridge grant of the network the message enters (absent in the first format) */
  grant?: Uint8Array
}

function fields (m: BridgedMessage): Record<string, unknown> {
  const f: Record<string, unknown> = { topic: m.topic, origin: m.originNetwork, from: m.originPeer, data: m.data, bridge: m.bridge }
  if (m.grant !== undefined) f.grant = m.grant
  return f
}

function signedPart (m: BridgedMessage): Uint8Array {
  return encodeCanonical({ ctx: 'mycelium-bridged-v1', ...fields(m) })
}

export function isBridgedMessage (data: Uint8Array): boolean {
  if (data.length < MAGIC.length) return false
  for (let i = 0; i < MAGIC.length; i++) if (data[i] !== MAGIC[i]) return false
  return true
}

export function encodeBridgedMessage (message: BridgedMessage, bridgeSecretKey: Uint8Array): Uint8Array {
  const body = encodeCanonical({ ...fields(message), sig: sign(bridgeSecretKey, signedPart(message)) })
  const out = new Uint8Array(MAGIC.length + body.length)
  out.set(MAGIC)
  out.set(body, MAGIC.length)
  return out
}

/** Decodes and verifies a bridged message; undefined when it is malformed or its signature is wrong. */
export function decodeBridgedMessage (data: Uint8Array): BridgedMessage | undefined {
  if (!isBridgedMessage(data)) return undefined
  try {
    const raw = decodeCanonical(data.subarray(MAGIC.length)) as Record<string, unknown>
    // only known fields: an unsigned extra field would give one message several encodings
    if (raw === null || typeof raw !== 'object' || !Object.keys(raw).every(k => BRIDGED_FIELDS.has(k))) return undefined
    const { topic, origin, from, data: inner, bridge, grant, sig } = raw
    if (typeof topic !== 'string' || typeof origin !== 'string' || typeof from !== 'string' || typeof bridge !== 'string' || !(inner instanceof Uint8Array) || !(sig instanceof Uint8Array) || sig.length !== 64) return undefined
    if (grant !== undefined && !(grant instanceof Uint8Array)) return undefined
    const message: BridgedMessage = grant === undefined ? { topic, originNetwork: origin, originPeer: from, data: inner, bridge } : { topic, originNetwork: origin, originPeer: from, data: inner, bridge, grant }
    return verify(publicKeyOfPeerId(bridge), signedPart(message), sig) ? message : undefined
  } catch {
    return undefined
  }
}

/**
 * True when the message may be shown as coming from its origin network: its grant is signed
 * by this network's root and lets exactly this sender carry that network's messages, now.
 */
export function isAttested (message: BridgedMessage, receiver: { networkId: string, sender: string, now: number }): boolean {
  if (message.grant === undefined || message.bridge !== receiver.sender) return false
  try {
    return grantAdmits(decodeBridgeGrant(message.grant), { networkId: receiver.networkId, bridge: receiver.sender, origin: message.originNetwork, now: receiver.now })
  } catch (err) {
    if (err instanceof InvalidBridgeGrantError) return false
    throw err
  }
}
