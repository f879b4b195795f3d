// The frames of the stripe protocol. Primary → backup: `origin` (first frame of a stream; on a
// sealed link the backup answers it with `link-nonce`, its half of the session's key material),
// `stripe` (part of an epoch), `heartbeat` (echoed back: the link's RTT). Backup → primary: `stripe-receipt` (returns flow
// control credit), `epoch-applied` (the epoch is committed), `resumed` (after a handover).
// Every frame starts with a version byte and a kind byte; a stripe ends with a SHA-256 of
// everything before it (what the epoch's content hash is made of). A backup recomputes it before
// using anything in the stripe, except on a sealed link: there the link's AEAD has already
// proved that every byte, the hash included, is what the primary sent, and the second pass over
// the stripe was the largest cost a sealed link added to the path (SHA-256 ~720 MB/s here).
import { createHash } from 'node:crypto'
import type { VcpuState } from '../checkpoint.ts'
import { ByteReader, ByteWriter } from './bytes.ts'
import { FrameIntegrityError, InvalidFrameError } from './errors.ts'

export const WIRE_VERSION = 1
export const HASH_BYTES = 32

const KIND_ORIGIN = 1
const KIND_STRIPE = 2
const KIND_STRIPE_RECEIPT = 3
const KIND_EPOCH_APPLIED = 4
const KIND_HEARTBEAT = 5
const KIND_RESUMED = 6
const KIND_RELEASE = 7
const KIND_LINK_NONCE = 8

const FLAG_FULL = 1
const FLAG_HANDOVER = 2
const FLAG_VCPU = 4
const FLAG_ENGINE = 8

const PAGE_RAW = 0
const PAGE_ZERO = 1
const PAGE_DELTA = 2

/** Each side's key nonce on a sealed link (link-seal.ts SEAL_NONCE_BYTES). */
const ORIGIN_NONCE_BYTES = 16
const MAX_VM_ID_BYTES = 128
const MAX_PEER_ID_BYTES = 256
const MAX_VCPU_BLOB_BYTES = 8192
const MAX_ENGINE_BYTES = 32
const MAX_STRIPE_COUNT = 1 << 20
const MAX_MEMORY_BYTES = 2 ** 40

export type PageEncoding = 'raw' | 'zero' | 'delta'

export interface PageEntry {
  index: number
  encoding: PageEncoding
  /** The page (raw), nothing (zero), or the delta against the backup's current page (delta). */
  data: Uint8Array
}

export interface StripeHeader {
  vmId: string
  epoch: number
  stripeIndex: number
  stripeCount: number
  full: boolean
  /** The last epoch of a migration: the receiver resumes the guest after applying it. */
  handover: boolean
  memoryBytes: number
  pageSize: number
  guestCounter: number
  takenAt: number
  /** Carried by stripe 0 only. */
  vcpu?: VcpuState
  /** The engine the guest runs on (stripe 0 only; absent from primaries older than the interpreter, which ran KVM). */
  engine?: string
}

export interface StripeFrame extends StripeHeader {
  kind: 'stripe'
  pages: PageEntry[]
  hash: Uint8Array
}

/**
 * First frame of a stripe stream, from the primary: who it is, which run of its replication
 * (a newer run restarts the epochs, e.g. after the primary restarted), and for a sealed link the
 * primary's key nonce (`salt`, SEAL_NONCE_BYTES; empty on a direct link, which noise protects).
 */
export interface OriginFrame { kind: 'origin', peerId: string, run: number, salt: Uint8Array }
/** The backup's answer to a sealed origin: its fresh nonce, mixed into the session's keys. */
export interface LinkNonceFrame { kind: 'link-nonce', nonce: Uint8Array }
export interface StripeReceiptFrame { kind: 'stripe-receipt', vmId: string, epoch: number, stripeIndex: number }
export interface EpochAppliedFrame {
  kind: 'epoch-applied'
  vmId: string
  epoch: number
  guestCounter: number
  /** SHA-256 over the epoch's stripe hashes in stripe order; the primary knows it too. */
  contentHash: Uint8Array
  /** SHA-256 of the backup's whole memory after the epoch, when the backup was asked to hash it. */
  memoryHash?: Uint8Array
}
/** `sentAt` is the primary's clock (ms); the backup echoes the frame unchanged. */
export interface HeartbeatFrame { kind: 'heartbeat', vmId: string, epoch: number, sentAt: number }
export interface ResumedFrame { kind: 'resumed', vmId: string, epoch: number, guestCounter: number }
/** The primary no longer needs this backup for the VM (stopped, or migrated elsewhere): drop the replica. */
export interface ReleaseFrame { kind: 'release', vmId: string }

export type ReplicationFrame = OriginFrame | LinkNonceFrame | StripeFrame | StripeReceiptFrame | EpochAppliedFrame | HeartbeatFrame | ResumedFrame | ReleaseFrame

/** A stripe ready to send: body chunks (no copy of the page data) and its integrity hash. */
export interface EncodedStripe {
  epoch: number
  stripeIndex: number
  chunks: Uint8Array[]
  bytes: number
  hash: Uint8Array
}

function head (writer: ByteWriter, kind: number): ByteWriter {
  return writer.u8(WIRE_VERSION).u8(kind)
}

function encodingCode (encoding: PageEncoding): number {
  return encoding === 'raw' ? PAGE_RAW : encoding === 'zero' ? PAGE_ZERO : PAGE_DELTA
}

/** Encode a stripe. The page data is referenced, not copied. */
export function encodeStripe (header: StripeHeader, pages: readonly PageEntry[]): EncodedStripe {
  const writer = new ByteWriter(128 + pages.length * 9)
  let flags = 0
  if (header.full) flags |= FLAG_FULL
  if (header.handover) flags |= FLAG_HANDOVER
  if (header.vcpu != null) flags |= FLAG_VCPU
  if (header.engine != null) flags |= FLAG_ENGINE
  head(writer, KIND_STRIPE)
    .u8(flags)
    .text(header.vmId)
    .u53(header.epoch)
    .u32(header.stripeIndex)
    .u32(header.stripeCount)
    .u53(header.memoryBytes)
    .u32(header.pageSize)
    .u53(header.guestCounter)
    .f64(header.takenAt)
  if (header.vcpu != null) writer.blob(header.vcpu.regs).blob(header.vcpu.sregs)
  if (header.engine != null) writer.text(header.engine)
  writer.u32(pages.length)
  for (const page of pages) {
    writer.u32(page.index).u8(encodingCode(page.encoding))
    if (page.encoding === 'delta') writer.u32(page.data.length)
  }
  const chunks = [writer.finish()]
  for (const page of pages) {
    if (page.encoding !== 'zero') chunks.push(page.data)
  }
  const hasher = createHash('sha256')
  let bytes = 0
  for (const chunk of chunks) {
    hasher.update(chunk)
    bytes += chunk.length
  }
  const hash = new Uint8Array(hasher.digest())
  chunks.push(hash)
  return { epoch: header.epoch, stripeIndex: header.stripeIndex, chunks, bytes: bytes + HASH_BYTES, hash }
}

export function encodeOrigin (origin: Omit<OriginFrame, 'kind'>): Uint8Array {
  return head(new ByteWriter(), KIND_ORIGIN).text(origin.peerId).u53(origin.run).u8(origin.salt.length).bytes(origin.salt).finish()
}

export function encodeLinkNonce (nonce: Uint8Array): Uint8Array {
  return head(new ByteWriter(), KIND_LINK_NONCE).u8(nonce.length).bytes(nonce).finish()
}

export function encodeStripeReceipt (vmId: string, epoch: number, stripeIndex: number): Uint8Array {
  return head(new ByteWriter(), KIND_STRIPE_RECEIPT).text(vmId).u53(epoch).u32(stripeIndex).finish()
}

export function encodeEpochApplied (frame: Omit<EpochAppliedFrame, 'kind'>): Uint8Array {
  const writer = head(new ByteWriter(), KIND_EPOCH_APPLIED)
    .text(frame.vmId).u53(frame.epoch).u53(frame.guestCounter).bytes(frame.contentHash)
  if (frame.memoryHash != null) writer.u8(1).bytes(frame.memoryHash)
  else writer.u8(0)
  return writer.finish()
}

export function encodeHeartbeat (vmId: string, epoch: number, sentAt: number): Uint8Array {
  return head(new ByteWriter(), KIND_HEARTBEAT).text(vmId).u53(epoch).f64(sentAt).finish()
}

export function encodeResumed (vmId: string, epoch: number, guestCounter: number): Uint8Array {
  return head(new ByteWriter(), KIND_RESUMED).text(vmId).u53(epoch).u53(guestCounter).finish()
}

export function encodeRelease (vmId: string): Uint8Array {
  return head(new ByteWriter(), KIND_RELEASE).text(vmId).finish()
}

function readVmId (reader: ByteReader): string {
  const vmId = reader.text(MAX_VM_ID_BYTES, 'vmId')
  if (vmId.length === 0) throw new InvalidFrameError('empty vmId')
  return vmId
}

function decodeStripe (reader: ByteReader, body: Uint8Array, authenticated: boolean): StripeFrame {
  const flags = reader.u8('flags')
  if ((flags & ~(FLAG_FULL | FLAG_HANDOVER | FLAG_VCPU | FLAG_ENGINE)) !== 0) throw new InvalidFrameError(`unknown stripe flags ${flags}`)
  const vmId = readVmId(reader)
  const epoch = reader.u53('epoch')
  const stripeIndex = reader.u32('stripe index')
  const stripeCount = reader.u32('stripe count')
  if (stripeCount === 0 || stripeCount > MAX_STRIPE_COUNT) throw new InvalidFrameError(`stripe count ${stripeCount} out of range`)
  if (stripeIndex >= stripeCount) throw new InvalidFrameError(`stripe index ${stripeIndex} not below count ${stripeCount}`)
  const memoryBytes = reader.u53('memory size')
  const pageSize = reader.u32('page size')
  if (pageSize < 512 || pageSize > 1 << 21 || (pageSize & (pageSize - 1)) !== 0) throw new InvalidFrameError(`page size ${pageSize} is not a power of two in [512, 2 MiB]`)
  if (memoryBytes === 0 || memoryBytes > MAX_MEMORY_BYTES || memoryBytes % pageSize !== 0) throw new InvalidFrameError(`memory size ${memoryBytes} is not a positive multiple of the page size`)
  const guestCounter = reader.u53('guest counter')
  const takenAt = reader.f64('taken at')
  let vcpu: VcpuState | undefined
  if ((flags & FLAG_VCPU) !== 0) {
    const regs = reader.blob(MAX_VCPU_BLOB_BYTES, 'regs')
    const sregs = reader.blob(MAX_VCPU_BLOB_BYTES, 'sregs')
    vcpu = { regs, sregs }
  }
  // Only a name here; the backup checks it against the engines it can run before resuming.
  const engine = (flags & FLAG_ENGINE) !== 0 ? reader.text(MAX_ENGINE_BYTES, 'engine') : undefined
  const pageCount = reader.u32('page count')
  const pageTotal = memoryBytes / pageSize
  if (pageCount > pageTotal) throw new InvalidFrameError(`${pageCount} pages in a guest of ${pageTotal}`)
  // Each table row is at least 5 bytes: a count that the frame cannot hold is refused before allocating.
  if (pageCount * 5 > reader.remaining) throw new InvalidFrameError(`page table of ${pageCount} rows exceeds the frame`)
  const table: Array<{ index: number, code: number, length: number }> = new Array(pageCount)
  for (let i = 0; i < pageCount; i++) {
    const index = reader.u32('page index')
    if (index >= pageTotal) throw new InvalidFrameError(`page index ${index} beyond the guest's ${pageTotal} pages`)
    const code = reader.u8('page encoding')
    let length: number
    if (code === PAGE_RAW) length = pageSize
    else if (code === PAGE_ZERO) length = 0
    else if (code === PAGE_DELTA) {
      length = reader.u32('delta length')
      if (length >= pageSize) throw new InvalidFrameError(`delta of ${length} bytes for a ${pageSize}-byte page`)
    } else throw new InvalidFrameError(`unknown page encoding ${code}`)
    table[i] = { index, code, length }
  }
  const pages: PageEntry[] = new Array(pageCount)
  for (let i = 0; i < pageCount; i++) {
    const row = table[i]
    const encoding: PageEncoding = row.code === PAGE_RAW ? 'raw' : row.code === PAGE_ZERO ? 'zero' : 'delta'
    pages[i] = { index: row.index, encoding, data: reader.bytes(row.length, 'page data') }
  }
  const bodyEnd = reader.offset
  const hash = reader.bytes(HASH_BYTES, 'integrity hash')
  reader.end('stripe')
  if (!authenticated) {
    const actual = createHash('sha256').update(body.subarray(0, bodyEnd)).digest()
    if (!actual.equals(hash)) throw new FrameIntegrityError(`stripe ${stripeIndex} of epoch ${epoch} of ${vmId} fails its integrity hash`)
  }
  return {
    kind: 'stripe', vmId, epoch, stripeIndex, stripeCount, full: (flags & FLAG_FULL) !== 0, handover: (flags & FLAG_HANDOVER) !== 0,
    memoryBytes, pageSize, guestCounter, takenAt, vcpu, engine, pages, hash
  }
}

/**
 * Decode and validate one frame body (without its length prefix). Page data are views into
 * `body`. `authenticated`: the body was opened by a sealed link's AEAD (FrameOpener), so a
 * stripe's hash is taken as carried instead of being recomputed.
 */
export function decodeFrame (body: Uint8Array, options: { authenticated?: boolean } = {}): ReplicationFrame {
  const reader = new ByteReader(body)
  const version = reader.u8('version')
  if (version !== WIRE_VERSION) throw new InvalidFrameError(`unsupported wire version ${version}`)
  const kind = reader.u8('kind')
  switch (kind) {
    case KIND_ORIGIN: {
      const peerId = reader.text(MAX_PEER_ID_BYTES, 'peer id')
      const run = reader.u53('run')
      const salt = reader.bytes(reader.u8('salt length'), 'salt')
      reader.end('origin')
      if (salt.length !== 0 && salt.length !== ORIGIN_NONCE_BYTES) throw new InvalidFrameError(`origin nonce of ${salt.length} bytes, expected 0 or ${ORIGIN_NONCE_BYTES}`)
      return { kind: 'origin', peerId, run, salt }
    }
    case KIND_LINK_NONCE: {
      const nonce = reader.bytes(reader.u8('nonce length'), 'nonce')
      reader.end('link nonce')
      if (nonce.length !== ORIGIN_NONCE_BYTES) throw new InvalidFrameError(`link nonce of ${nonce.length} bytes, expected ${ORIGIN_NONCE_BYTES}`)
      return { kind: 'link-nonce', nonce }
    }
    case KIND_STRIPE:
      return decodeStripe(reader, body, options.authenticated === true)
    case KIND_STRIPE_RECEIPT: {
      const frame: StripeReceiptFrame = { kind: 'stripe-receipt', vmId: readVmId(reader), epoch: reader.u53('epoch'), stripeIndex: reader.u32('stripe index') }
      reader.end('stripe receipt')
      return frame
    }
    case KIND_EPOCH_APPLIED: {
      const vmId = readVmId(reader)
      const epoch = reader.u53('epoch')
      const guestCounter = reader.u53('guest counter')
      const contentHash = reader.bytes(HASH_BYTES, 'content hash')
      const hasMemoryHash = reader.u8('memory hash flag')
      if (hasMemoryHash > 1) throw new InvalidFrameError('memory hash flag is not 0 or 1')
      const memoryHash = hasMemoryHash === 1 ? reader.bytes(HASH_BYTES, 'memory hash') : undefined
      reader.end('epoch applied')
      return { kind: 'epoch-applied', vmId, epoch, guestCounter, contentHash, memoryHash }
    }
    case KIND_HEARTBEAT: {
      const frame: HeartbeatFrame = { kind: 'heartbeat', vmId: readVmId(reader), epoch: reader.u53('epoch'), sentAt: reader.f64('sent at') }
      reader.end('heartbeat')
      return frame
    }
    case KIND_RESUMED: {
      const frame: ResumedFrame = { kind: 'resumed', vmId: readVmId(reader), epoch: reader.u53('epoch'), guestCounter: reader.u53('guest counter') }
      reader.end('resumed')
      return frame
    }
    case KIND_RELEASE: {
      const frame: ReleaseFrame = { kind: 'release', vmId: readVmId(reader) }
      reader.end('release')
      return frame
    }
    default:
      throw new InvalidFrameError(`unknown frame kind ${kind}`)
  }
}

/** SHA-256 over the stripe hashes of an epoch, in stripe order: what both ends agree an epoch was. */
export function epochContentHash (stripeHashes: readonly Uint8Array[]): Uint8Array {
  const hasher = createHash('sha256')
  for (const hash of stripeHashes) hasher.update(hash)
  return new Uint8Array(hasher.digest())
}
