// Signed departure notices on the roles topic. A node that loses a kept link to a peer, and
// does not get it back within a short grace, tells the network that the peer's advertisement
// `seq` is no longer live; a node that stops says so of itself. With advertisements refreshed
// only every minute, this is how a crashed node leaves the views within seconds instead of
// when its entry ages out (3 refreshes), and it costs one message per departure, not a
// heartbeat per node.
//
// What a notice can do is bounded: it names one advertisement (peerId, seq), so it never
// removes a newer one; the named node, alive, hears it and re-advertises at once with a higher
// seq; a receiver connected to the named node believes its own link over the notice; and each
// receiver takes at most MAX_PER_WITNESS_PER_MINUTE from one witness. The signature covers the
// topic (which carries the network id), like an advertisement's.
import { sign, verify, encodeCanonical, publicKeyOfPeerId } from '../../crypto/index.ts'
import { openSignedEnvelope } from './signed-envelope.ts'

const DOMAIN = 'mycelium/role-departure/v1'
export const MAX_DEPARTURE_BYTES = 1024
/** Departures a receiver takes from one witness per minute: a mass crash of a sclerotium's 30 rhizomorphs fits. */
export const MAX_PER_WITNESS_PER_MINUTE = 32

export interface RoleDeparture {
  /** The node that is gone. */
  peerId: string
  /** Its last advertisement the witness held: that one and older ones are no longer live. */
  seq: number
  /** Who says so (the node itself when it stops). */
  witness: string
  issuedAt: number
}

export class InvalidRoleDepartureError extends Error {
  readonly name = 'InvalidRoleDepartureError'
}

const FIELDS = ['issuedAt', 'peerId', 'seq', 'witness']

function signedBytes (d: RoleDeparture, topic: string): Uint8Array {
  return encodeCanonical({ domain: DOMAIN, topic, gone: d })
}

export function encodeRoleDeparture (d: RoleDeparture, secretKey: Uint8Array, topic: string): Uint8Array {
  return encodeCanonical({ gone: d, sig: sign(secretKey, signedBytes(d, topic)) })
}

/** Decodes, validates and verifies one departure received on `topic`. */
export function decodeRoleDeparture (bytes: Uint8Array, topic: string): RoleDeparture {
  const fail = (why: string): never => { throw new InvalidRoleDepartureError(why) }
  const { body: g, sig } = openSignedEnvelope(bytes, 'departure', MAX_DEPARTURE_BYTES, 'gone', FIELDS, fail)
  if (typeof g.peerId !== 'string' || g.peerId.length > 128 || typeof g.witness !== 'string' || g.witness.length > 128) fail('peerId and witness must be strings')
  for (const n of [g.seq, g.issuedAt]) if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) fail('seq and issuedAt must be non-negative integers')
  let publicKey: Uint8Array
  try {
    publicKeyOfPeerId(g.peerId as string)
    publicKey = publicKeyOfPeerId(g.witness as string)
  } catch (err) {
    return fail((err as Error).message)
  }
  const d = g as unknown as RoleDeparture
  if (!verify(publicKey, signedBytes(d, topic), sig)) fail('signature does not verify')
  return d
}

/** At most `limit` departures per witness per minute, per receiver. */
export class WitnessLimit {
  private readonly taken = new Map<string, number[]>()
  private readonly limit: number

  constructor (limit = MAX_PER_WITNESS_PER_MINUTE) {
    this.limit = limit
  }

  take (witness: string, now: number): boolean {
    const recent = (this.taken.get(witness) ?? []).filter(t => t > now - 60_000)
    if (recent.length >= this.limit) return false
    recent.push(now)
    this.taken.set(witness, recent)
    // bounded: a flood of witness identities cannot grow it
    if (this.taken.size > 4096) this.taken.delete(this.taken.keys().next().value as string)
    return true
  }
}
