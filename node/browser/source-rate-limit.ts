// Per-source budgets for the public HTTP endpoints: a token bucket per source address, so one
// machine cannot flood an endpoint while everyone else still gets in. A source is an IPv4
// address or the /64 of an IPv6 one (one host commonly holds a whole /64 and could otherwise
// rotate through it). The table is bounded: when full, the source idle longest is forgotten;
// a forgotten source starts again with a full bucket, which is never more than a newcomer gets.
import { isIPv6 } from 'node:net'

export interface RateBudget {
  /** requests allowed at once */
  burst: number
  /** one more request is allowed every refillMs */
  refillMs: number
}

const MAX_SOURCES = 4096

/** The rate-limiting key of a remote address: IPv4 as it is (also when IPv4-mapped), IPv6 by /64. */
export function sourceOf (remoteAddress: string | undefined): string {
  if (remoteAddress === undefined || remoteAddress === '') return 'unknown'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress)
  if (mapped !== null) return mapped[1]
  if (!isIPv6(remoteAddress)) return remoteAddress
  return `${expandIPv6(remoteAddress).slice(0, 4).join(':')}::/64`
}

function expandIPv6 (address: string): string[] {
  const [head, tail] = address.split('%')[0].split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : Array.from({ length: 8 - left.length - right.length }, () => '0')
  return [...left, ...zeros, ...right].map(g => g.toLowerCase().replace(/^0+(?=.)/, ''))
}

export class SourceRateLimit {
  private readonly budget: RateBudget
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  constructor (budget: RateBudget) {
    this.budget = budget
  }

  /** Takes one request from the source's budget: undefined when allowed, else ms until the next one is. */
  take (source: string, now = Date.now()): number | undefined {
    const held = this.buckets.get(source)
    const tokens = held === undefined ? this.budget.burst : Math.min(this.budget.burst, held.tokens + (now - held.at) / this.budget.refillMs)
    // re-inserted on every request: the Map's first key is then the source idle longest
    this.buckets.delete(source)
    if (tokens < 1) {
      this.buckets.set(source, { tokens, at: now })
      return Math.ceil((1 - tokens) * this.budget.refillMs)
    }
    this.buckets.set(source, { tokens: tokens - 1, at: now })
    if (this.buckets.size > MAX_SOURCES) this.buckets.delete(this.buckets.keys().next().value as string)
    return undefined
  }
}
