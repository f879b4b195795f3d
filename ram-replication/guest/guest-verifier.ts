// Checks a copy of guest memory (the primary's, or a backup's) against the guest's own record:
// every stamped page must be self-consistent, and the stamps must add up to the checksum the
// guest keeps in its parameter page. A torn or misplaced page, or a page from another epoch, breaks it.
// A guest stopped mid-write has exactly one page in flight, named in its parameter page: that
// page may be torn, and the checksum may already count its new stamp.
import { GUEST_PAGE_SIZE, GuestLayout, GuestParamOffsets, readGuestChecksum, readGuestCounter, readPageWriterParams } from './page-writer.ts'

export interface GuestMemoryCheck {
  ok: boolean
  counter: number
  /** The checksum the guest keeps. */
  guestChecksum: number
  /** The checksum recomputed from the data pages. */
  memoryChecksum: number
  /** Data pages that carry a stamp. */
  stampedPages: number
  /** The highest counter value found in a page (≤ counter, low 32 bits). */
  newestStamp: number
  /** Pages whose content does not match their own header (first few only). */
  badPages: number[]
  /** The page the guest was writing when its memory was taken (0 = stopped between writes). */
  inflightPage: number
}

/** The stamp the guest writes for write number `counter` (low 32 bits) into page `page`. */
export function pageStamp (counter: number, page: number): number {
  let s = (Math.imul(counter >>> 0, 0x9e3779b1) ^ Math.imul(page >>> 0, 0x85ebca77)) >>> 0
  s = (s ^ (s >>> 15)) >>> 0
  return s
}

/** The dwords 3.. of a `full` page: the xorshift32 stream from the stamp (low bit set). */
export function fullPageStream (stamp: number, dwords: number): Uint32Array {
  const stream = new Uint32Array(dwords)
  let x = ((stamp & 0xfffffffe) + 1) >>> 0
  for (let i = 3; i < dwords; i++) {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    stream[i] = x
  }
  return stream
}

export function verifyGuestMemory (memory: Uint8Array): GuestMemoryCheck {
  const params = readPageWriterParams(memory)
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength)
  const dwords = params.bytesPerWrite / 4
  const counter = readGuestCounter(memory)
  const guestChecksum = readGuestChecksum(memory)
  const counterLow = counter % 0x100000000
  let sum = 0
  let stampedPages = 0
  let newestStamp = 0
  const badPages: number[] = []
  const inflightPage = view.getUint32(GuestLayout.paramsAddress + GuestParamOffsets.inflightPage, true)
  const end = params.dataStartPage + params.dataPages
  for (let page = params.dataStartPage; page < end; page++) {
    const base = page * GUEST_PAGE_SIZE
    const written = view.getUint32(base, true)
    const stamp = view.getUint32(base + 8, true)
    sum = (sum + stamp) >>> 0
    if (page === inflightPage) continue
    if (written === 0 && stamp === 0 && view.getUint32(base + 4, true) === 0) continue
    stampedPages++
    if (written > newestStamp) newestStamp = written
    let good = view.getUint32(base + 4, true) === page && stamp === pageStamp(written, page) && (counter >= 0x100000000 || written <= counterLow)
    if (params.pattern === 'full') {
      const stream = good ? fullPageStream(stamp, dwords) : undefined
      for (let i = 3; stream != null && good && i < dwords; i++) {
        if (view.getUint32(base + i * 4, true) !== stream[i]) good = false
      }
    } else {
      for (let i = 3; good && i < dwords; i++) {
        if (view.getUint32(base + i * 4, true) !== ((stamp + i) >>> 0)) good = false
      }
    }
    if (!good && badPages.length < 16) badPages.push(page)
  }
  let checksumAgrees = sum === guestChecksum
  if (!checksumAgrees && inflightPage >= params.dataStartPage && inflightPage < end) {
    // Stopped after the guest counted the in-flight write's new stamp, before it stored it.
    const current = view.getUint32(inflightPage * GUEST_PAGE_SIZE + 8, true)
    checksumAgrees = ((sum - current + pageStamp(counterLow, inflightPage)) >>> 0) === guestChecksum
  }
  const inflightValid = inflightPage === 0 || (inflightPage >= params.dataStartPage && inflightPage < end)
  return {
    ok: badPages.length === 0 && checksumAgrees && inflightValid,
    counter,
    guestChecksum,
    memoryChecksum: sum,
    stampedPages,
    newestStamp,
    badPages,
    inflightPage
  }
}

/** Pages whose stamp says they were written by writes number (after, upTo] (low 32 bits). */
export function pagesWrittenBetween (memory: Uint8Array, after: number, upTo: number): number[] {
  const params = readPageWriterParams(memory)
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength)
  const pages: number[] = []
  const end = params.dataStartPage + params.dataPages
  for (let page = params.dataStartPage; page < end; page++) {
    const written = view.getUint32(page * GUEST_PAGE_SIZE, true)
    if (written > after && written <= upTo) pages.push(page)
  }
  return pages
}
