// What a node says about itself in the spores: its `node` entry (addresses, role, a small
// hardware summary), `health` and `uptime`. Read fresh at each publication.
import { availableParallelism, freemem, totalmem, loadavg, arch, platform } from 'node:os'
import { statfsSync } from 'node:fs'
import type { SelfSummary } from '../../spores/index.ts'

const MiB = 1024 ** 2
const GiB = 1024 ** 3
/** Limits of the node entry's schema. */
const MAX_ADDRS = 16
const MAX_ADDR_CHARS = 256

export interface SelfFacts {
  addrs: () => string[]
  role: () => string
  startedAt: number
  dataDir: string
  labels?: Record<string, string>
}

/** Dialable addresses without the /p2p suffix (the entry's origin is the peer id), relay paths last. */
export function publishableAddrs (addrs: string[]): string[] {
  const bare = [...new Set(addrs.map(a => a.replace(/\/p2p\/[^/]+$/, '')))]
    .filter(a => a.startsWith('/') && a.length <= MAX_ADDR_CHARS)
  const direct = bare.filter(a => !a.includes('/p2p-circuit'))
  return [...direct, ...bare.filter(a => a.includes('/p2p-circuit'))].slice(0, MAX_ADDRS)
}

function diskFreeGiB (dir: string): number | undefined {
  try {
    const s = statfsSync(dir)
    return Math.floor((s.bavail * s.bsize) / GiB)
  } catch {
    return undefined
  }
}

export function selfSummary (facts: SelfFacts, now = Date.now()): SelfSummary {
  const cores = availableParallelism()
  const load = loadavg()[0]
  const memFreeMiB = Math.floor(freemem() / MiB)
  const disk = diskFreeGiB(facts.dataDir)
  const role = /^[a-z-]{1,32}$/.test(facts.role()) ? facts.role() : 'unknown'
  return {
    node: {
      addrs: publishableAddrs(facts.addrs()),
      role,
      hardware: { cores, memoryMiB: Math.floor(totalmem() / MiB), arch: arch(), os: platform() },
      ...(facts.labels === undefined || Object.keys(facts.labels).length === 0 ? {} : { labels: facts.labels })
    },
    health: {
      status: load > cores * 2 || memFreeMiB < 64 ? 'degraded' : 'ok',
      load: Math.round(load * 100) / 100,
      memFreeMiB,
      ...(disk === undefined ? {} : { diskFreeGiB: disk })
    },
    uptime: { since: facts.startedAt, uptimeS: Math.floor((now - facts.startedAt) / 1000) }
  }
}
