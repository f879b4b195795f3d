// Whether a node's own summary entry changed enough to travel. Every node holds every node's
// `node`, `health` and `uptime` entries, so re-publishing them unchanged every minute costs
// each node N entries a minute: the idle traffic grows with the network. An entry goes out
// when what a reader acts on changed, and otherwise only at a slow refresh (SelfPublisher).
//   node    any field (addresses, role, hardware, labels)
//   uptime  `since` (a restart); `uptimeS` is now − since, which a reader can work out itself
//   health  the status, the load's integer part, and free memory and disk by power of two:
//           the coarse picture placement reads, not the noise of every sample
//   usage   counters that only grow: it travels at the refresh
import type { EntryType } from '../entry/types.ts'

const log2 = (n: number | undefined): number => n === undefined ? -1 : Math.floor(Math.log2(Math.max(1, n)))

/** The part of an own entry's value whose change is published at once. */
export function materialKey (type: EntryType, value: unknown): string {
  const v = value as Record<string, unknown>
  switch (type) {
    case 'uptime':
      return String(v.since)
    case 'health':
      return JSON.stringify([v.status, Math.floor(Number(v.load)), log2(v.memFreeMiB as number), log2(v.diskFreeGiB as number | undefined)])
    case 'usage':
      return ''
    default:
      return JSON.stringify(value)
  }
}
