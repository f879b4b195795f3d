// Text forms of bytes used in files, tokens and JSON output.

/** Text that is not the hex or base64url it should be (a TypeError, as before it had a name). */
export class InvalidEncodingError extends TypeError {
  readonly name = 'InvalidEncodingError'
}

// Hex ids key every cache of messages and signatures on the consensus path: a table beats
// formatting each byte.
const HEX_BYTES = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'))

export function toHex (bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i++) out += HEX_BYTES[bytes[i]]
  return out
}

export function fromHex (hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(hex)) throw new InvalidEncodingError('not a hex string')
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const B64URL_INDEX = new Map([...B64URL].map((c, i) => [c, i]))

export function toBase64Url (bytes: Uint8Array): string {
  let out = ''
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2]
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63] + B64URL[(n >> 6) & 63] + B64URL[n & 63]
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const n = bytes[i] << 16
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63]
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8)
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63] + B64URL[(n >> 6) & 63]
  }
  return out
}

export function fromBase64Url (text: string): Uint8Array {
  if (text.length % 4 === 1) throw new InvalidEncodingError('not a base64url string')
  const out = new Uint8Array(Math.floor(text.length * 3 / 4))
  let bits = 0
  let acc = 0
  let o = 0
  for (const c of text) {
    const v = B64URL_INDEX.get(c)
    if (v === undefined) throw new InvalidEncodingError('not a base64url string')
    acc = (acc << 6) | v
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 0xff
    }
  }
  return out
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567'

/** Lower-case RFC 4648 base32 without padding: safe in protocol ids, topics and file names. */
export function toBase32 (bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let acc = 0
  for (const b of bytes) {
    acc = (acc << 8) | b
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out += B32[(acc >> bits) & 31]
    }
  }
  if (bits > 0) out += B32[(acc << (5 - bits)) & 31]
  return out
}
