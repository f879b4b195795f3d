// End-to-end sealing of a link: guest memory crosses rhizomorphs that are members but need not
// read it. Primary and backup derive link keys from a static X25519 agreement of their libp2p
// Ed25519 identities (converted to Montgomery form) and a fresh salt the primary sends in its
// origin frame; every later frame is AES-256-GCM with a per-direction counter nonce. Only the
// primary named in the origin frame can produce frames the backup accepts, so a forwarder can
// neither read, alter, nor forge stripes.
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { publicKeyOfPeerId } from '../../crypto/index.ts'
import { FrameIntegrityError } from './errors.ts'

export const SEAL_SALT_BYTES = 16
const TAG_BYTES = 16
const INFO = new TextEncoder().encode('mycelium/ram-replication/link-seal/1')

export interface LinkKeys {
  /** Primary → backup. */
  toBackup: Uint8Array
  /** Backup → primary. */
  toPrimary: Uint8Array
}

/** Both ends compute the same keys: the primary from (its secret, backup id), the backup from (its secret, primary id). */
export function deriveLinkKeys (localSecret: Uint8Array, remotePeerId: string, primaryPeerId: string, backupPeerId: string, salt: Uint8Array): LinkKeys {
  const shared = x25519.getSharedSecret(ed25519.utils.toMontgomerySecret(localSecret), ed25519.utils.toMontgomery(publicKeyOfPeerId(remotePeerId)))
  const info = new Uint8Array(Buffer.concat([INFO, Buffer.from(`${primaryPeerId}/${backupPeerId}`)]))
  const okm = new Uint8Array(hkdfSync('sha256', shared, salt, info, 64))
  return { toBackup: okm.subarray(0, 32), toPrimary: okm.subarray(32, 64) }
}

function nonceOf (counter: number): Uint8Array {
  const nonce = new Uint8Array(12)
  const view = new DataView(nonce.buffer)
  view.setUint32(4, Math.floor(counter / 0x1_0000_0000))
  view.setUint32(8, counter % 0x1_0000_0000)
  return nonce
}

/** Seals outgoing frames of one direction. */
export class FrameSealer {
  private readonly key: KeyObject
  private counter = 0

  constructor (key: Uint8Array) {
    this.key = createSecretKey(key)
  }

  seal (chunks: readonly Uint8Array[]): Uint8Array[] {
    const cipher = createCipheriv('aes-256-gcm', this.key, nonceOf(this.counter++))
    const out: Uint8Array[] = []
    for (const chunk of chunks) {
      const sealed = cipher.update(chunk)
      if (sealed.length > 0) out.push(sealed)
    }
    const last = cipher.final()
    if (last.length > 0) out.push(last)
    out.push(cipher.getAuthTag())
    return out
  }
}

/** Opens incoming frames of one direction, in order; a frame that fails is an integrity error. */
export class FrameOpener {
  private readonly key: KeyObject
  private counter = 0

  constructor (key: Uint8Array) {
    this.key = createSecretKey(key)
  }

  open (body: Uint8Array): Uint8Array {
    if (body.length < TAG_BYTES) throw new FrameIntegrityError('sealed frame shorter than its tag')
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonceOf(this.counter++))
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES))
    const plain = decipher.update(body.subarray(0, body.length - TAG_BYTES))
    try {
      decipher.final()
    } catch {
      throw new FrameIntegrityError('sealed frame fails authentication (wrong key, reordered or altered)')
    }
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength)
  }
}
