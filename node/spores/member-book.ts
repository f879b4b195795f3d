// Which peer ids the spores accept entries from: this node, the network root, and every peer
// that passed the membership handshake with this node (its certificate chain was verified
// then). Kept in the node's database so a restarted node still knows the members it met.
import type { Level } from 'level'

/** The part of a sublevel the book uses. */
interface MemberLevel {
  put: (key: string, value: Uint8Array) => Promise<void>
  keys: () => AsyncIterable<string>
}

const SEEN = new Uint8Array([1])

export class MemberBook {
  private readonly known = new Set<string>()
  private readonly store: MemberLevel

  private constructor (store: MemberLevel) {
    this.store = store
  }

  static async open (level: Level<string, Uint8Array>, always: string[]): Promise<MemberBook> {
    const book = new MemberBook(level.sublevel<string, Uint8Array>('members', { keyEncoding: 'utf8', valueEncoding: 'view' }) as unknown as MemberLevel)
    for (const id of always) book.known.add(id)
    for await (const key of book.store.keys()) book.known.add(key)
    return book
  }

  has (peerId: string): boolean {
    return this.known.has(peerId)
  }

  /** A peer whose membership this node verified (handshake or seed confirmation). */
  async add (peerId: string): Promise<void> {
    if (this.known.has(peerId)) return
    this.known.add(peerId)
    await this.store.put(peerId, SEEN)
  }

  get size (): number {
    return this.known.size
  }
}
