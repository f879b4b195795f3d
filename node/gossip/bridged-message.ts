// A message that a bridge carried over from another network. It is wrapped so receivers can
// tell where it came from: the origin network and sender, and the bridge that forwarded it,
// whose signature covers all of it (and who is also the gossip sender). Bridged messages are
// never bridged again, so two bridges can never loop a message between networks.
import { encodeCanonical, decodeCanonical, sign, verify, publicKeyOfPeerId } from '../../crypto/index.ts'

const MAGIC = new TextEncoder().encode('\u0000mycelium-bridged-v1\u0000')

export interface BridgedMessage {
  /** the application topic name, the same on both sides */
  topic: string
  originNetwork: string
  originPeer: string
  data: Uint8Array
  /** the bridge's peer id in the network the message was forwarded into */
  bridge: string
}

function signedPart (m: BridgedMessage): Uint8Array {
  return encodeCanonical({ ctx: 'mycelium-bridged-v1', topic: m.topic, origin: m.originNetwork, from: m.originPeer, data: m.data, bridge: m.bridge })
}

export function isBridgedMessage (data: Uint8Array): boolean {
  if (data.length < MAGIC.length) return false
  for (let i = 0; i < MAGIC.length; i++) if (data[i] !== MAGIC[i]) return false
  return true
}

export function encodeBridgedMessage (message: BridgedMessage, bridgeSecretKey: Uint8Array): Uint8Array {
  const body = encodeCanonical({ topic: message.topic, origin: message.originNetwork, from: message.originPeer, data: message.data, bridge: message.bridge, sig: sign(bridgeSecretKey, signedPart(message)) })
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
    const { topic, origin, from, data: inner, bridge, sig } = raw
    if (typeof topic !== 'string' || typeof origin !== 'string' || typeof from !== 'string' || typeof bridge !== 'string' || !(inner instanceof Uint8Array) || !(sig instanceof Uint8Array) || sig.length !== 64) return undefined
    const message: BridgedMessage = { topic, originNetwork: origin, originPeer: from, data: inner, bridge }
    return verify(publicKeyOfPeerId(bridge), signedPart(message), sig) ? message : undefined
  } catch {
    return undefined
  }
}
