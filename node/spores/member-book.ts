// Which peer ids the spores accept entries from: this node, the network root, and every peer
// that passed the membership handshake with this node, until its certificate expires. Kept
// in the node's database with that expiry, so a restarted node still knows the members it
// met, and a member whose certificate ran out (a browser tab after 12 hours) stops being an
// origin then. Revocation is checked by the caller on every use: it can come at any time.
import type { Level } from 'level'

/** The part of a sublevel the book uses. */
interface MemberLevel {
  put: (key: string, value: Uint8Array) => Promise<void>
  del: (key: string) => Promise<void>
  iterator: () => AsyncIterable<[string, Uint8Array]>
}

const FOREVER = Number.MAX_SAFE_INTEGER

function encodeExpiry (expiresAt: number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setFloat64(0, expiresAt)
  return out
}

/** Entries written before expiries were kept hold one byte: they count as expired (met again, they come back). */
function decodeExpiry (value: Uint8Array): number {
  if (value.byteLength !== 8) return 0
  const at = new DataView(value.buffer, value.byteOffset, 8).getFloat64(0)
  return Number.isFinite(at) ? at : 0
}

export class MemberBook {
  private readonly known = new Map<string, number>()
  private readonly store: MemberLevel

  private constructor (store: MemberLevel) {
    this.store = store
  }

  static async open (level: Level<string, Uint8Array>, always: string[], now = Date.now()): Promise<MemberBook> {
    const book = new MemberBook(level.sublevel<string, Uint8Array>('members', { keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as MemberLevel)
    for await (const [key, value] of book.store.iterator()) {
      const expiresAt = decodeExpiry(value)
      if (expiresAt > now) book.known.set(key, expiresAt)
      else await book.store.del(key)
    }
    for (const id of always) book.known.set(id, FOREVER)
    return book
  }

  /** A member now: met, and its certificate has not expired. */
  has (peerId: string, now = Date.now()): boolean {
    return (this.known.get(peerId) ?? 0) > now
  }

  /** A peer whose membership this node verified, until its certificate expires. */
  async add (peerId: string, expiresAt: number): Promise<void> {
    if ((this.known.get(peerId) ?? 0) >= expiresAt) return
    this.known.set(peerId, expiresAt)
    await this.store.put(peerId, encodeExpiry(expiresAt))
  }

  get size (): number {
    return this.known.size
  }
}
