// A page's catch-up on the latent tier: the initiator half of the spores' anti-entropy sync
// (spores/latent/anti-entropy-sync.ts), run against one sclerotium from an empty local set,
// pull-only. The page holds nothing the sclerotium lacks, so every range differs: the
// sclerotium answers with record fingerprints or splits, the page recurses into every split,
// then asks for at most `max` of the records it learned of, spread evenly over the key space
// (the page keeps a few hundred entries; pulling the whole tier could be megabytes). It never
// pushes: a hyphae reads the spores but does not relay them.
import type { PeerId } from '@libp2p/interface'
import { FramedStream } from '../../spores/framed-stream.ts'
import { encodeRanges, parseSplit } from '../../spores/latent/anti-entropy-sync.ts'
import type { RangeSummary } from '../../spores/latent/range-fingerprint.ts'
import type { HyphaeLibp2p } from './hyphae-node.ts'

const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
const RANGES_PER_ROUND = 256
const MAX_ROUNDS = 64
/** Fingerprints learned before the page stops recursing: 16 bytes each. */
const MAX_HASHES = 20_000

export class LatentPullError extends Error {
  readonly name = 'LatentPullError'
}

const nothing = (lo: string, hi: string | null): RangeSummary => ({ lo, hi, fp: new Uint8Array(16), count: 0 })

/** Pulls up to `max` latent entries (their signed bytes, not yet checked) from `peer`. */
export async function pullLatentEntries (libp2p: HyphaeLibp2p, protocol: string, peer: PeerId, max: number, signal: AbortSignal): Promise<Uint8Array[]> {
  const stream = await libp2p.dialProtocol(peer, protocol, { signal })
  const framed = new FramedStream(stream, MAX_MESSAGE_BYTES, signal)
  try {
    const hashes: Uint8Array[] = []
    let queue = [nothing('', null)]
    for (let round = 0; queue.length > 0 && hashes.length < MAX_HASHES; round++) {
      if (round >= MAX_ROUNDS) throw new LatentPullError('the sync did not converge')
      const ranges = queue.slice(0, RANGES_PER_ROUND)
      queue = queue.slice(RANGES_PER_ROUND)
      await framed.send({ t: 'ranges', ranges: encodeRanges(ranges) })
      const reply = await framed.receive() as { t?: unknown, parts?: unknown }
      if (reply?.t !== 'diff' || !Array.isArray(reply.parts) || reply.parts.length !== ranges.length) throw new LatentPullError('expected a diff')
      reply.parts.forEach((part: unknown, i) => {
        if (part === null) return
        if (!Array.isArray(part)) throw new LatentPullError('bad diff part')
        if (part[0] === 'i' && part[1] instanceof Uint8Array && part[1].length % 16 === 0) {
          for (let at = 0; at < part[1].length; at += 16) hashes.push(part[1].subarray(at, at + 16))
        } else if (part[0] === 's') {
          for (const sub of parseSplit(ranges[i], part)) if (sub.count > 0) queue.push(nothing(sub.lo, sub.hi))
        } else {
          throw new LatentPullError('bad diff part')
        }
      })
    }
    const wanted = spread(hashes, max)
    const want = new Uint8Array(wanted.length * 16)
    wanted.forEach((h, i) => { want.set(h, i * 16) })
    await framed.send({ t: 'want', hashes: want })
    const entries: Uint8Array[] = []
    for (;;) {
      const msg = await framed.receive() as { t?: unknown, entries?: unknown, more?: unknown }
      if (msg?.t !== 'entries' || !Array.isArray(msg.entries) || !msg.entries.every(e => e instanceof Uint8Array)) throw new LatentPullError('expected entries')
      entries.push(...msg.entries as Uint8Array[])
      if (msg.more !== true || entries.length > max) break
    }
    await stream.close({ signal })
    return entries.slice(0, max)
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

/** At most `max` items, evenly spaced: a sample of every part of the key space, every entry type. */
function spread<T> (items: T[], max: number): T[] {
  if (items.length <= max) return items
  return Array.from({ length: max }, (_, i) => items[Math.floor(i * items.length / max)])
}
