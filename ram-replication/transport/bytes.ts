// Fixed-width big-endian reading and writing for the replication frames. Reads are bounds-checked
// so a short or lying frame fails with InvalidFrameError instead of reading garbage.
import { InvalidFrameError } from './errors.ts'

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

const TWO_POW_32 = 0x1_0000_0000

export class ByteWriter {
  private buffer: Uint8Array
  private view: DataView
  private offset = 0

  constructor (initialSize = 256) {
    this.buffer = new Uint8Array(initialSize)
    this.view = new DataView(this.buffer.buffer)
  }

  private reserve (bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return
    let size = this.buffer.length * 2
    while (size < this.offset + bytes) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buffer.subarray(0, this.offset))
    this.buffer = next
    this.view = new DataView(next.buffer)
  }

  u8 (value: number): this {
    this.reserve(1)
    this.view.setUint8(this.offset, value)
    this.offset += 1
    return this
  }

  u16 (value: number): this {
    this.reserve(2)
    this.view.setUint16(this.offset, value)
    this.offset += 2
    return this
  }

  u32 (value: number): this {
    this.reserve(4)
    this.view.setUint32(this.offset, value)
    this.offset += 4
    return this
  }

  /** A non-negative safe integer in 8 bytes. */
  u53 (value: number): this {
    this.reserve(8)
    this.view.setUint32(this.offset, Math.floor(value / TWO_POW_32))
    this.view.setUint32(this.offset + 4, value % TWO_POW_32)
    this.offset += 8
    return this
  }

  f64 (value: number): this {
    this.reserve(8)
    this.view.setFloat64(this.offset, value)
    this.offset += 8
    return this
  }

  bytes (value: Uint8Array): this {
    this.reserve(value.length)
    this.buffer.set(value, this.offset)
    this.offset += value.length
    return this
  }

  /** Length-prefixed (u32) bytes. */
  blob (value: Uint8Array): this {
    return this.u32(value.length).bytes(value)
  }

  /** Length-prefixed (u16) UTF-8 text. */
  text (value: string): this {
    const encoded = utf8Encoder.encode(value)
    return this.u16(encoded.length).bytes(encoded)
  }

  finish (): Uint8Array {
    return this.buffer.subarray(0, this.offset)
  }
}

export class ByteReader {
  private readonly source: Uint8Array
  private readonly view: DataView
  offset = 0

  constructor (bytes: Uint8Array) {
    this.source = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  get remaining (): number {
    return this.source.length - this.offset
  }

  private need (count: number, what: string): void {
    if (this.offset + count > this.source.length) {
      throw new InvalidFrameError(`frame ends inside ${what}`)
    }
  }

  u8 (what = 'u8'): number {
    this.need(1, what)
    const value = this.view.getUint8(this.offset)
    this.offset += 1
    return value
  }

  u16 (what = 'u16'): number {
    this.need(2, what)
    const value = this.view.getUint16(this.offset)
    this.offset += 2
    return value
  }

  u32 (what = 'u32'): number {
    this.need(4, what)
    const value = this.view.getUint32(this.offset)
    this.offset += 4
    return value
  }

  u53 (what = 'u53'): number {
    this.need(8, what)
    const high = this.view.getUint32(this.offset)
    const low = this.view.getUint32(this.offset + 4)
    this.offset += 8
    if (high > 0x1f_ffff) throw new InvalidFrameError(`${what} exceeds 2^53`)
    return high * TWO_POW_32 + low
  }

  f64 (what = 'f64'): number {
    this.need(8, what)
    const value = this.view.getFloat64(this.offset)
    this.offset += 8
    return value
  }

  /** A view (no copy) of the next `count` bytes. */
  bytes (count: number, what = 'bytes'): Uint8Array {
    this.need(count, what)
    const value = this.source.subarray(this.offset, this.offset + count)
    this.offset += count
    return value
  }

  blob (maxLength: number, what = 'blob'): Uint8Array {
    const length = this.u32(`${what} length`)
    if (length > maxLength) throw new InvalidFrameError(`${what} of ${length} bytes exceeds ${maxLength}`)
    return this.bytes(length, what)
  }

  text (maxLength: number, what = 'text'): string {
    const length = this.u16(`${what} length`)
    if (length > maxLength) throw new InvalidFrameError(`${what} of ${length} bytes exceeds ${maxLength}`)
    try {
      return utf8Decoder.decode(this.bytes(length, what))
    } catch {
      throw new InvalidFrameError(`${what} is not valid UTF-8`)
    }
  }

  end (what: string): void {
    if (this.remaining !== 0) throw new InvalidFrameError(`${this.remaining} trailing bytes after ${what}`)
  }
}
