// Each node's trust ledger: faults applied by the rules in fault-rules.ts, once per
// (accused, round, reason) whoever reported them. Every fault is proven by the accused's own
// signed messages, checked against the certified chain before it gets here, so no number of
// accusers can slash a member that did nothing.
import { toHex } from '../crypto/index.ts'
import { roundIdOf } from './round.ts'
import type { Evidence } from './evidence.ts'
import { TRUST_PENALTY, INITIAL_TRUST, EXCLUSION_THRESHOLD, RECOVERY_PER_ROUND, EXCLUDING_FAULTS, type FaultReason } from './fault-rules.ts'

export interface Slash {
  reason: FaultReason
  evidenceId: string
  round: string
  key: string
  at: number
}

export interface PeerTrust {
  peerId: string
  trust: number
  excluded: boolean
  slashes: Slash[]
}

export interface TrustReport {
  threshold: number
  peers: PeerTrust[]
}

const MAX_SLASHES_KEPT = 64
const APPLIED_MAX = 16_384

export class TrustLedger {
  private readonly peers = new Map<string, { trust: number, excluded: boolean, slashes: Slash[] }>()
  private readonly applied = new Set<string>()
  private readonly clock: () => number
  private readonly listeners = new Set<(peerId: string, slash: Slash) => void>()

  constructor (options: { clock?: () => number } = {}) {
    this.clock = options.clock ?? Date.now
  }

  private entry (peerId: string): { trust: number, excluded: boolean, slashes: Slash[] } {
    let e = this.peers.get(peerId)
    if (e === undefined) {
      e = { trust: INITIAL_TRUST, excluded: false, slashes: [] }
      this.peers.set(peerId, e)
    }
    return e
  }

  onSlash (listener: (peerId: string, slash: Slash) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * Applies evidence verified against the certified chain (the engine checks it first).
   * Returns true if trust changed.
   */
  apply (evidence: Evidence): boolean {
    const round = toHex(roundIdOf(evidence.header))
    const faultKey = `${evidence.accused}/${round}/${evidence.reason}`
    if (this.applied.has(faultKey)) return false
    if (this.applied.size >= APPLIED_MAX) this.applied.delete(this.applied.values().next().value as string)
    this.applied.add(faultKey)
    const e = this.entry(evidence.accused)
    e.trust = Math.max(0, e.trust - TRUST_PENALTY[evidence.reason])
    if (EXCLUDING_FAULTS.has(evidence.reason)) e.trust = 0
    if (e.trust < EXCLUSION_THRESHOLD) e.excluded = true
    const slash: Slash = { reason: evidence.reason, evidenceId: evidence.id, round, key: evidence.header.key, at: this.clock() }
    e.slashes.push(slash)
    if (e.slashes.length > MAX_SLASHES_KEPT) e.slashes.shift()
    for (const l of this.listeners) l(evidence.accused, slash)
    return true
  }

  /** A valid vote for a certified result: a little trust comes back (never for the excluded). */
  reward (peerId: string): void {
    const e = this.entry(peerId)
    if (e.excluded) return
    e.trust = Math.min(INITIAL_TRUST, e.trust + RECOVERY_PER_ROUND)
  }

  trust (peerId: string): number {
    return this.peers.get(peerId)?.trust ?? INITIAL_TRUST
  }

  isExcluded (peerId: string): boolean {
    return this.peers.get(peerId)?.excluded ?? false
  }

  slashesOf (peerId: string): Slash[] {
    return [...(this.peers.get(peerId)?.slashes ?? [])]
  }

  /** Committee candidates: the given peers minus the excluded, order kept. */
  eligible (candidates: readonly string[]): string[] {
    return candidates.filter(p => !this.isExcluded(p))
  }

  report (): TrustReport {
    return {
      threshold: EXCLUSION_THRESHOLD,
      peers: [...this.peers.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([peerId, e]) => ({ peerId, trust: Math.round(e.trust * 1000) / 1000, excluded: e.excluded, slashes: [...e.slashes] }))
    }
  }
}
