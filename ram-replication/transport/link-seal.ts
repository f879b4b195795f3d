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
// advanced before anything is decrypted, so a refused frame never reaches the decryption. Within a session a
// recorded frame (a heartbeat, say) therefore cannot be played again.
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
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
 * AES-256-GCM through createCipheriv, on the calling thread. WebCrypto ran it on libuv's thread
 * pool, but its part on the event loop (copying the input, checking the algorithm and key) cost
 * as much as the whole AES-NI pass does here (~50 µs per 128 KiB stripe), and every frame then
 * waited a thread-pool round trip.
 */
function aesKey (key: Uint8Array): KeyObject {
  return createSecretKey(key)
}

/** Seals outgoing frames of one direction, numbering them 0, 1, 2… in the order seal() is called. */
export class FrameSealer {
  private readonly key: KeyObject
  private seq = 0n

  constructor (key: Uint8Array) {
    this.key = aesKey(key)
  }

  /**
   * The sealed frame as chunks: seq, ciphertext, tag. The chunks are joined first: sealed one by
   * one, a stripe's 4 KiB pages would stay 4 KiB pieces down to the socket (noise encrypts and
   * TCP writes a list buffer by buffer), dozens of small writes per stripe instead of a few.
   */
  seal (chunks: readonly Uint8Array[]): Uint8Array[] {
    const seq = new Uint8Array(SEQ_BYTES)
    new DataView(seq.buffer).setBigUint64(0, this.seq++)
    const cipher = createCipheriv('aes-256-gcm', this.key, nonceOf(seq), { authTagLength: TAG_BYTES })
    const sealed: Uint8Array[] = [seq, cipher.update(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))]
    const last = cipher.final()
    if (last.length > 0) sealed.push(last)
    sealed.push(cipher.getAuthTag())
    return sealed
  }
}

/** Opens incoming frames of one direction; only the next sequence number is accepted. */
export class FrameOpener {
  private readonly key: KeyObject
  private expected = 0n

  constructor (key: Uint8Array) {
    this.key = aesKey(key)
  }

  /**
   * The frame's plaintext. Throws FrameReplayError for any sequence number but the next one
   * (before decrypting anything), FrameIntegrityError when the frame fails authentication; no
   * plaintext is returned before the tag is verified.
   */
  open (body: Uint8Array): Uint8Array {
    if (body.length < SEQ_BYTES + TAG_BYTES) throw new FrameIntegrityError('sealed frame shorter than its sequence number and tag')
    const seqBytes = body.subarray(0, SEQ_BYTES)
    const seq = new DataView(seqBytes.buffer, seqBytes.byteOffset, SEQ_BYTES).getBigUint64(0)
    if (seq < this.expected) throw new FrameReplayError(`sealed frame ${seq} arrived again (next expected ${this.expected}): replayed or duplicated`)
    if (seq > this.expected) throw new FrameReplayError(`sealed frame ${seq} arrived before ${this.expected}: reordered or dropped`)
    this.expected++
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonceOf(seqBytes), { authTagLength: TAG_BYTES })
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES))
    const plain = decipher.update(body.subarray(SEQ_BYTES, body.length - TAG_BYTES))
    try {
      decipher.final()
    } catch {
      throw new FrameIntegrityError(`sealed frame ${seq} fails authentication (altered, forged, or from another session)`)
    }
    return plain
  }
}
