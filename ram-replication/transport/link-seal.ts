// End-to-end sealing of a link: guest memory crosses rhizomorphs that are members but need not
// read it. Primary and backup derive link keys from a static X25519 agreement of their libp2p
// Ed25519 identities (converted to Montgomery form) and two fresh nonces: the primary's, sent in
// its origin frame, and the backup's, sent back in a link-nonce frame before any sealed frame.
// The backup's nonce makes every session's keys new, so a forwarder that recorded a whole
// session cannot replay it later: nothing it recorded opens under the new keys.
//
// Every sealed frame is `seq (u64) ‖ AES-256-GCM(ciphertext) ‖ tag`, with the AEAD nonce built
// from `seq`. The sequence number is carried in the clear so that the opener can tell a replayed
// or duplicated frame (seq below the next expected) from a reordered or dropped one (seq above)
// and say so; the AEAD then authenticates it, since the nonce binds it. The seq is checked and
// advanced when the frame arrives, so a refused frame never reaches the decryption. Within a session a
// recorded frame (a heartbeat, say) therefore cannot be played again.
import { createSecretKey, hkdfSync, subtle } from 'node:crypto'
import type { webcrypto } from 'node:crypto'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { publicKeyOfPeerId } from '../../crypto/index.ts'
import { FrameIntegrityError, FrameReplayError } from './errors.ts'

/** Length of each side's nonce (the primary's in the origin frame, the backup's in link-nonce). */
export const SEAL_NONCE_BYTES = 16
/** Kept for callers that name the primary's contribution a salt. */
export const SEAL_SALT_BYTES = SEAL_NONCE_BYTES
export const SEQ_BYTES = 8
const TAG_BYTES = 16
const INFO = new TextEncoder().encode('mycelium/ram-replication/link-seal/2')

export interface LinkKeys {
  /** Primary → backup. */
  toBackup: Uint8Array
  /** Backup → primary. */
  toPrimary: Uint8Array
}

/**
 * Both ends compute the same keys: the primary from (its secret, backup id), the backup from
 * (its secret, primary id); both nonces enter the HKDF salt, so neither side alone fixes the keys.
 */
export function deriveLinkKeys (localSecret: Uint8Array, remotePeerId: string, primaryPeerId: string, backupPeerId: string, primaryNonce: Uint8Array, backupNonce: Uint8Array): LinkKeys {
  if (primaryNonce.length !== SEAL_NONCE_BYTES || backupNonce.length !== SEAL_NONCE_BYTES) {
    throw new FrameIntegrityError(`link nonces must be ${SEAL_NONCE_BYTES} bytes each`)
  }
  const shared = x25519.getSharedSecret(ed25519.utils.toMontgomerySecret(localSecret), ed25519.utils.toMontgomery(publicKeyOfPeerId(remotePeerId)))
  const salt = Buffer.concat([primaryNonce, backupNonce])
  const info = Buffer.concat([INFO, Buffer.from(`${primaryPeerId}/${backupPeerId}`)])
  const okm = new Uint8Array(hkdfSync('sha256', shared, salt, info, 64))
  return { toBackup: okm.subarray(0, 32), toPrimary: okm.subarray(32, 64) }
}

function nonceOf (seq: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(12)
  nonce.set(seq, 4)
  return nonce
}

/**
 * AES-256-GCM through WebCrypto, not createCipheriv: WebCrypto runs each job on libuv's thread
 * pool, so sealing and opening a stripe overlap with the event loop's noise, yamux and apply
 * work instead of adding to it (on a node with several links that loop is the bottleneck).
 */
function aesKey (key: Uint8Array, usage: 'encrypt' | 'decrypt'): webcrypto.CryptoKey {
  return createSecretKey(key).toCryptoKey({ name: 'AES-GCM' }, false, [usage])
}

/** Seals outgoing frames of one direction, numbering them 0, 1, 2… in the order seal() is called. */
export class FrameSealer {
  private readonly key: webcrypto.CryptoKey
  private seq = 0n

  constructor (key: Uint8Array) {
    this.key = aesKey(key, 'encrypt')
  }

  /**
   * The sealed frame as chunks (seq, ciphertext and tag). The sequence number is taken now; the
   * caller writes frames in the order it called seal(), whatever order the jobs finish in.
   */
  async seal (chunks: readonly Uint8Array[]): Promise<Uint8Array[]> {
    const seq = new Uint8Array(SEQ_BYTES)
    new DataView(seq.buffer).setBigUint64(0, this.seq++)
    const plain = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
    const sealed = await subtle.encrypt({ name: 'AES-GCM', iv: nonceOf(seq), tagLength: TAG_BYTES * 8 }, this.key, plain)
    return [seq, new Uint8Array(sealed)]
  }
}

/** Opens incoming frames of one direction; only the next sequence number is accepted. */
export class FrameOpener {
  private readonly key: webcrypto.CryptoKey
  private expected = 0n

  constructor (key: Uint8Array) {
    this.key = aesKey(key, 'decrypt')
  }

  /**
   * Checks the sequence number now (throws FrameReplayError at once) and returns the opening
   * job, which rejects with FrameIntegrityError when the frame fails authentication.
   */
  open (body: Uint8Array): Promise<Uint8Array> {
    if (body.length < SEQ_BYTES + TAG_BYTES) throw new FrameIntegrityError('sealed frame shorter than its sequence number and tag')
    // A copy (Buffer#slice would be a view into a pooled buffer, and the nonce outlives this call).
    const seqBytes = new Uint8Array(body.subarray(0, SEQ_BYTES))
    const seq = new DataView(seqBytes.buffer).getBigUint64(0)
    if (seq < this.expected) throw new FrameReplayError(`sealed frame ${seq} arrived again (next expected ${this.expected}): replayed or duplicated`)
    if (seq > this.expected) throw new FrameReplayError(`sealed frame ${seq} arrived before ${this.expected}: reordered or dropped`)
    this.expected++
    return subtle.decrypt({ name: 'AES-GCM', iv: nonceOf(seqBytes), tagLength: TAG_BYTES * 8 }, this.key, body.subarray(SEQ_BYTES)).then(
      plain => new Uint8Array(plain),
      () => { throw new FrameIntegrityError(`sealed frame ${seq} fails authentication (altered, forged, or from another session)`) }
    )
  }
}
