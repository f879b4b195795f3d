// XBZRLE-like delta of a page against its previous version: runs of
// (unchanged byte count, changed byte count, changed bytes), counts as LEB128 varints.
// A guest that rewrites a few words of a page sends a few bytes instead of the page.
import { InvalidPageDeltaError } from './errors.ts'

function writeVarint (out: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value & 0x7f) | 0x80
    value >>>= 7
  }
  out[offset++] = value
  return offset
}

/**
 * Encode `current` against `previous` (same length). Returns null when the delta would take
 * `limit` bytes or more, so the caller sends the raw page instead.
 */
export function encodePageDelta (previous: Uint8Array, current: Uint8Array, limit: number): Uint8Array | null {
  const length = current.length
  // A run header takes at most 6 bytes for pages up to 2 MiB; keep room for one.
  const out = new Uint8Array(limit + 12)
  let written = 0
  let position = 0
  // Equal stretches are skipped a 32-bit word at a time when both pages are word-aligned.
  const aligned = previous.byteOffset % 4 === 0 && current.byteOffset % 4 === 0 && length % 4 === 0
  const previousWords = aligned ? new Uint32Array(previous.buffer, previous.byteOffset, length >>> 2) : undefined
  const currentWords = aligned ? new Uint32Array(current.buffer, current.byteOffset, length >>> 2) : undefined
  while (position < length) {
    const unchangedStart = position
    if (previousWords != null && currentWords != null && (position & 3) === 0) {
      let word = position >>> 2
      const words = length >>> 2
      while (word < words && previousWords[word] === currentWords[word]) word++
      position = word << 2
    }
    while (position < length && previous[position] === current[position]) position++
    if (position === length) break
    const changedStart = position
    // A changed run ends at the first stretch of 4 equal bytes, so short equal gaps do not
    // cost a new run header each.
    let equalRun = 0
    while (position < length) {
      if (previous[position] === current[position]) {
        equalRun++
        if (equalRun >= 4) break
      } else {
        equalRun = 0
      }
      position++
    }
    const changedEnd = position - (position < length ? equalRun - 1 : equalRun)
    position = changedEnd
    const changedLength = changedEnd - changedStart
    if (written + 12 + changedLength >= limit) return null
    written = writeVarint(out, written, changedStart - unchangedStart)
    written = writeVarint(out, written, changedLength)
    out.set(current.subarray(changedStart, changedEnd), written)
    written += changedLength
  }
  return out.subarray(0, written)
}

function readVarint (input: Uint8Array, state: { offset: number }): number {
  let value = 0
  let shift = 0
  for (;;) {
    if (state.offset >= input.length) throw new InvalidPageDeltaError('delta ends inside a run header')
    const byte = input[state.offset++]
    value += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) return value
    shift += 7
    if (shift > 28) throw new InvalidPageDeltaError('run length varint too long')
  }
}

/** Apply a delta in place to `page`, which must hold the version the delta was computed from. */
export function applyPageDelta (page: Uint8Array, delta: Uint8Array): void {
  const state = { offset: 0 }
  let position = 0
  while (state.offset < delta.length) {
    position += readVarint(delta, state)
    const changedLength = readVarint(delta, state)
    if (changedLength === 0) throw new InvalidPageDeltaError('empty changed run')
    if (position + changedLength > page.length) throw new InvalidPageDeltaError('changed run past the end of the page')
    if (state.offset + changedLength > delta.length) throw new InvalidPageDeltaError('delta ends inside a changed run')
    page.set(delta.subarray(state.offset, state.offset + changedLength), position)
    state.offset += changedLength
    position += changedLength
  }
}

/** Check a delta's structure against a page size without applying it (so a bad delta never tears an epoch). */
export function validatePageDelta (delta: Uint8Array, pageSize: number): void {
  const state = { offset: 0 }
  let position = 0
  while (state.offset < delta.length) {
    position += readVarint(delta, state)
    const changedLength = readVarint(delta, state)
    if (changedLength === 0) throw new InvalidPageDeltaError('empty changed run')
    if (position + changedLength > pageSize) throw new InvalidPageDeltaError('changed run past the end of the page')
    if (state.offset + changedLength > delta.length) throw new InvalidPageDeltaError('delta ends inside a changed run')
    state.offset += changedLength
    position += changedLength
  }
}
