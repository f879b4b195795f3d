import { sha256, toBase32 } from '../crypto/index.ts'

const DOMAIN = new TextEncoder().encode('mycelium-network-id-v1:')

/**
 * A network is its Ed25519 root key; its id is a short hash of that key, safe inside
 * protocol ids and topic names, so two networks never share a protocol or a topic.
 */
export function networkIdOf (rootPublicKey: Uint8Array): string {
  const input = new Uint8Array(DOMAIN.length + rootPublicKey.length)
  input.set(DOMAIN)
  input.set(rootPublicKey, DOMAIN.length)
  return 'myc' + toBase32(sha256(input)).slice(0, 20)
}

export function isNetworkId (value: unknown): value is string {
  return typeof value === 'string' && /^myc[a-z2-7]{20}$/.test(value)
}

/** Protocol ids and topics of one network. */
export function protocolPrefix (networkId: string): string {
  return `/mycelium/${networkId}`
}

export function topicPrefix (networkId: string): string {
  return `mycelium/${networkId}`
}
