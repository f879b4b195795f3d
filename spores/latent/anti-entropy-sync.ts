// Anti-entropy sync of the latent tier between two peers, by range fingerprints over the
// sorted record ids. The initiator sends the fingerprint of the whole key space; the responder
// answers each differing range either with its items (id, hash) when it holds few, or with
// fingerprints of up to 16 sub-ranges. The initiator recurses only into sub-ranges that still
// differ, so the rounds and bytes grow with the difference (× log of the size), not with the
// database. Then the initiator pushes what the responder lacks and pulls what it lacks; both
// sides merge validation-first, exactly as gossip does.
//
// Messages (canonical CBOR, length-prefixed), initiator → responder:
//   { t: 'ranges', ranges: [[lo, hi, fp, count]…] }   → { t: 'diff', parts: [part…] }
//        one part per range, in order: null (equal) | ['i', hashes] (the responder's 16-byte
//        record fingerprints in the range, concatenated) | ['s', bounds, fps, counts] (k
//        sub-ranges: k-1 inner bounds, k fingerprints concatenated, k counts)
//   { t: 'give', entries: [bytes…] }                  (no answer)
//   { t: 'want', hashes }                             → { t: 'entries', entries, more }…
// Bounds are front-coded, [n, suffix] = the first n characters of the previous bound (the
// range's lo for the first inner bound; the previous range's lo for a lo; the lo for a hi) and
// then suffix; null is the end of the key space. Records are named by fingerprint, not id.
import type { PeerId, Stream } from '@libp2p/interface'
import { equalBytes } from '../../crypto/index.ts'
import { FramedStream } from '../framed-stream.ts'
import { SporeProtocolError } from '../errors.ts'
import type { SporeHost } from '../host.ts'
import type { SporeLogger } from '../logger.ts'
import type { SporeMerger } from '../merge/spore-merger.ts'
import type { TierStore } from '../store/tier-store.ts'
import { RangeView, hashKey, type RangeSummary } from './range-fingerprint.ts'

const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
const CHUNK_BYTES = 1024 * 1024
const MAX_RANGES = 4096
const MAX_ITEMS_PER_PART = 4096
const MAX_WANT = 50_000
/** Ranges sent per round: keeps every message well under MAX_MESSAGE_BYTES. */
const RANGES_PER_ROUND = 256
/** A side that holds nothing in a range gets up to this many items at once instead of a split. */
const EMPTY_LEAF = 128
const MAX_ROUNDS = 512
/** Differing ranges the initiator keeps track of at once; a peer splitting without end is cut off. */
const MAX_PENDING_RANGES = 65_536
const SPLIT = 16
const LEAF = 32
const SESSION_TIMEOUT_MS = 60_000

export interface SyncResult {
  peer: string
  rounds: number
  bytesSent: number
  bytesReceived: number
  pulled: number
  pushed: number
}

export interface SyncStats {
  sessions: number
  served: number
  bytesSent: number
  bytesReceived: number
  pulled: number
  pushed: number
  last?: SyncResult
}

type Part = null | ['i', Uint8Array] | ['s', Array<[number, string]>, Uint8Array, number[]]

function str (v: unknown, max = 600): string {
  if (typeof v !== 'string' || v.length > max) throw new SporeProtocolError('bad range bound')
  return v
}

function fp16 (v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== 16) throw new SporeProtocolError('bad fingerprint')
  return v
}

type Coded = [number, string]

function frontCode (prev: string, next: string): Coded {
  let n = 0
  const max = Math.min(prev.length, next.length)
  while (n < max && prev[n] === next[n]) n++
  return [n, next.slice(n)]
}

function frontDecode (prev: string, coded: unknown): string {
  if (!Array.isArray(coded) || coded.length !== 2 || typeof coded[0] !== 'number' || !Number.isInteger(coded[0]) || coded[0] < 0 || coded[0] > prev.length) throw new SporeProtocolError('bad bound')
  return str(prev.slice(0, coded[0]) + str(coded[1]))
}

export function encodeRanges (ranges: RangeSummary[]): unknown[] {
  let prev = ''
  return ranges.map(r => {
    const lo = frontCode(prev, r.lo)
    prev = r.lo
    return [lo, r.hi === null ? null : frontCode(r.lo, r.hi), r.fp, r.count]
  })
}

function parseRanges (raw: unknown): RangeSummary[] {
  if (!Array.isArray(raw) || raw.length > MAX_RANGES) throw new SporeProtocolError('bad range list')
  let prev = ''
  return raw.map((r: unknown) => {
    if (!Array.isArray(r) || r.length !== 4 || typeof r[3] !== 'number') throw new SporeProtocolError('bad range')
    const lo = frontDecode(prev, r[0])
    prev = lo
    return { lo, hi: r[1] === null ? null : frontDecode(lo, r[1]), fp: fp16(r[2]), count: r[3] }
  })
}

/** Sub-ranges of [lo, hi) from a split part: inner bounds must rise strictly inside the range. Also the page's pull (browser-client). */
export function parseSplit (range: RangeSummary, part: unknown[]): RangeSummary[] {
  const [, bounds, fps, counts] = part
  if (part.length !== 4 || !Array.isArray(bounds) || !(fps instanceof Uint8Array) || !Array.isArray(counts)) throw new SporeProtocolError('bad split')
  const k = bounds.length + 1
  if (k > SPLIT || fps.length !== 16 * k || counts.length !== k) throw new SporeProtocolError('bad split')
  const edges: Array<string | null> = [range.lo]
  for (const b of bounds) edges.push(frontDecode(edges[edges.length - 1] as string, b))
  edges.push(range.hi)
  const out: RangeSummary[] = []
  for (let i = 0; i < k; i++) {
    const from = edges[i] as string
    const to = edges[i + 1]
    if (to !== null && to <= from) throw new SporeProtocolError('split bounds out of order')
    if (typeof counts[i] !== 'number') throw new SporeProtocolError('bad split count')
    out.push({ lo: from, hi: to, fp: fps.slice(i * 16, i * 16 + 16), count: counts[i] })
  }
  return out
}

function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function chunkBySize (items: Uint8Array[], limit: number): Uint8Array[][] {
  const chunks: Uint8Array[][] = []
  let current: Uint8Array[] = []
  let size = 0
  for (const item of items) {
    if (current.length > 0 && size + item.length > limit) {
      chunks.push(current)
      current = []
      size = 0
    }
    current.push(item)
    size += item.length + 8
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}

export class AntiEntropySync {
  readonly stats: SyncStats = { sessions: 0, served: 0, bytesSent: 0, bytesReceived: 0, pulled: 0, pushed: 0 }
  private readonly host: SporeHost
  private readonly protocol: string
  private readonly store: TierStore
  private readonly merger: SporeMerger
  private readonly log: SporeLogger

  constructor (options: { host: SporeHost, protocol: string, store: TierStore, merger: SporeMerger, log: SporeLogger }) {
    this.host = options.host
    this.protocol = options.protocol
    this.store = options.store
    this.merger = options.merger
    this.log = options.log
  }

  async start (): Promise<void> {
    await this.host.handle(this.protocol, (stream) => { void this.serve(stream) }, { maxInboundStreams: 4 })
  }

  async stop (): Promise<void> {
    await this.host.unhandle(this.protocol)
  }

  /** Reconciles the latent tier with one peer. */
  async syncWith (peer: PeerId, signal?: AbortSignal): Promise<SyncResult> {
    const s = signal === undefined ? AbortSignal.timeout(SESSION_TIMEOUT_MS) : AbortSignal.any([signal, AbortSignal.timeout(SESSION_TIMEOUT_MS)])
    const stream = await this.host.dialProtocol(peer, this.protocol, { signal: s })
    const framed = new FramedStream(stream, MAX_MESSAGE_BYTES, s)
    const result: SyncResult = { peer: peer.toString(), rounds: 0, bytesSent: 0, bytesReceived: 0, pulled: 0, pushed: 0 }
    try {
      let view = new RangeView(this.store)
      let queue: RangeSummary[] = [view.summarize('', null)]
      const want: Uint8Array[] = []
      const give: string[] = []
      while (queue.length > 0) {
        if (++result.rounds > MAX_ROUNDS) throw new SporeProtocolError('sync did not converge')
        const ranges = queue.slice(0, RANGES_PER_ROUND)
        const rest = queue.slice(RANGES_PER_ROUND)
        await framed.send({ t: 'ranges', ranges: encodeRanges(ranges) })
        const reply = await framed.receive() as { t?: unknown, parts?: unknown }
        if (reply?.t !== 'diff' || !Array.isArray(reply.parts) || reply.parts.length !== ranges.length) throw new SporeProtocolError('expected a diff')
        view = new RangeView(this.store)
        const next: RangeSummary[] = []
        for (let p = 0; p < ranges.length; p++) {
          const part = (reply.parts as unknown[])[p]
          if (part === null) continue
          if (!Array.isArray(part) || part.length < 2) throw new SporeProtocolError('bad diff part')
          const { lo, hi } = ranges[p]
          if (part[0] === 'i') {
            const hashes = part[1]
            if (!(hashes instanceof Uint8Array) || hashes.length % 16 !== 0 || hashes.length > 16 * MAX_ITEMS_PER_PART) throw new SporeProtocolError('bad leaf')
            const theirs = new Set<string>()
            for (let i = 0; i < hashes.length; i += 16) theirs.add(hashKey(hashes, i))
            const mine = new Set<string>()
            const [a, b] = view.bounds(lo, hi)
            for (let i = a; i < b; i++) {
              const h = hashKey(view.hashOf(view.ids[i]) as Uint8Array)
              mine.add(h)
              if (!theirs.has(h)) give.push(view.ids[i])
            }
            for (let i = 0; i < hashes.length; i += 16) if (!mine.has(hashKey(hashes, i))) want.push(hashes.subarray(i, i + 16))
          } else if (part[0] === 's') {
            for (const r of parseSplit(ranges[p], part)) {
              const mine = view.summarize(r.lo, r.hi)
              if (mine.count !== r.count || !equalBytes(mine.fp, r.fp)) next.push(mine)
            }
          } else {
            throw new SporeProtocolError('bad diff part kind')
          }
        }
        queue = [...rest, ...next]
        if (queue.length > MAX_PENDING_RANGES) throw new SporeProtocolError('sync did not converge')
      }
      const giveBytes: Uint8Array[] = []
      for (const id of give) {
        const entry = await this.store.readById(id)
        if (entry !== undefined) giveBytes.push(entry.bytes)
      }
      for (const chunk of chunkBySize(giveBytes, CHUNK_BYTES)) await framed.send({ t: 'give', entries: chunk })
      result.pushed = giveBytes.length
      await framed.send({ t: 'want', hashes: concat(want.slice(0, MAX_WANT)) })
      for (;;) {
        const msg = await framed.receive() as { t?: unknown, entries?: unknown, more?: unknown }
        if (msg?.t !== 'entries' || !Array.isArray(msg.entries) || !msg.entries.every(e => e instanceof Uint8Array)) throw new SporeProtocolError('expected entries')
        if (msg.entries.length > 0) {
          const outcomes = await this.merger.merge('latent', msg.entries as Uint8Array[])
          result.pulled += outcomes.filter(o => o.status === 'merged').length
        }
        if (msg.more !== true) break
      }
      await stream.close({ signal: s })
    } catch (err) {
      stream.abort(err as Error)
      throw err
    } finally {
      result.bytesSent = framed.bytesOut
      result.bytesReceived = framed.bytesIn
      this.count(result)
    }
    return result
  }

  private count (result: SyncResult): void {
    this.stats.sessions++
    this.stats.bytesSent += result.bytesSent
    this.stats.bytesReceived += result.bytesReceived
    this.stats.pulled += result.pulled
    this.stats.pushed += result.pushed
    this.stats.last = result
  }

  private async serve (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(SESSION_TIMEOUT_MS)
    const framed = new FramedStream(stream, MAX_MESSAGE_BYTES, signal)
    let rounds = 0
    try {
      for (;;) {
        const msg = await framed.receive() as { t?: unknown, ranges?: unknown, entries?: unknown, hashes?: unknown }
        if (msg?.t === 'ranges') {
          if (++rounds > MAX_ROUNDS) throw new SporeProtocolError('too many rounds')
          await framed.send({ t: 'diff', parts: this.diff(parseRanges(msg.ranges)) })
        } else if (msg?.t === 'give') {
          if (!Array.isArray(msg.entries) || !msg.entries.every(e => e instanceof Uint8Array)) throw new SporeProtocolError('bad give')
          const outcomes = await this.merger.merge('latent', msg.entries as Uint8Array[])
          this.stats.pulled += outcomes.filter(o => o.status === 'merged').length
        } else if (msg?.t === 'want') {
          const hashes = msg.hashes
          if (!(hashes instanceof Uint8Array) || hashes.length % 16 !== 0 || hashes.length > 16 * MAX_WANT) throw new SporeProtocolError('bad want')
          const byHash = new Map<string, string>()
          for (const e of this.store.indexed()) byHash.set(hashKey(e.hash), `${e.type}/${e.key}`)
          const found: Uint8Array[] = []
          for (let i = 0; i < hashes.length; i += 16) {
            const id = byHash.get(hashKey(hashes, i))
            const entry = id === undefined ? undefined : await this.store.readById(id)
            if (entry !== undefined) found.push(entry.bytes)
          }
          const chunks = chunkBySize(found, CHUNK_BYTES)
          if (chunks.length === 0) chunks.push([])
          for (let i = 0; i < chunks.length; i++) await framed.send({ t: 'entries', entries: chunks[i], more: i < chunks.length - 1 })
          this.stats.pushed += found.length
          break
        } else {
          throw new SporeProtocolError('unexpected sync message')
        }
      }
      await stream.close({ signal })
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'sync session (served) failed')
      stream.abort(err as Error)
    } finally {
      this.stats.served++
      this.stats.bytesSent += framed.bytesOut
      this.stats.bytesReceived += framed.bytesIn
    }
  }

  private diff (ranges: RangeSummary[]): Part[] {
    const view = new RangeView(this.store)
    return ranges.map((r): Part => {
      const [a, b] = view.bounds(r.lo, r.hi)
      const count = b - a
      if (count === r.count && equalBytes(view.fingerprint(a, b), r.fp)) return null
      if (count <= LEAF || (r.count === 0 && count <= EMPTY_LEAF)) {
        const hashes = new Uint8Array(count * 16)
        for (let i = a; i < b; i++) hashes.set(view.hashOf(view.ids[i]) as Uint8Array, (i - a) * 16)
        return ['i', hashes]
      }
      const subs = view.split(r.lo, r.hi, SPLIT)
      const bounds: Coded[] = []
      for (let i = 1; i < subs.length; i++) bounds.push(frontCode(subs[i - 1].lo, subs[i].lo))
      return ['s', bounds, concat(subs.map(x => x.fp)), subs.map(x => x.count)]
    })
  }
}
