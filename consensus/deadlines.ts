// Round deadlines that follow the network. The base is an injected RTT estimate (e.g. the
// host's ping RTTs) or, without one, a smoothed estimate (as TCP's RTO: srtt + 4·rttvar) of
// how long members' commitments take to arrive after the proposal. A phase gets a few of
// those, within [minMs, maxMs].
export interface DeadlineOptions {
  /** Injected RTT estimate in ms (undefined = measure from message arrival times). */
  rtt?: () => number | undefined
  minMs?: number
  maxMs?: number
  /** Phase deadline = factor × estimate. */
  factor?: number
}

export class RoundDeadlines {
  private srtt: number | undefined
  private rttvar = 0
  private readonly o: Required<Omit<DeadlineOptions, 'rtt'>> & { rtt?: () => number | undefined }

  constructor (options: DeadlineOptions = {}) {
    this.o = { minMs: options.minMs ?? 300, maxMs: options.maxMs ?? 10_000, factor: options.factor ?? 2, rtt: options.rtt }
  }

  /** A measured delay between the proposal and a member's message arriving. */
  observe (sampleMs: number): void {
    if (!Number.isFinite(sampleMs) || sampleMs < 0) return
    if (this.srtt === undefined) {
      this.srtt = sampleMs
      this.rttvar = sampleMs / 2
      return
    }
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sampleMs)
    this.srtt = 0.875 * this.srtt + 0.125 * sampleMs
  }

  estimate (): number {
    const injected = this.o.rtt?.()
    if (injected !== undefined && Number.isFinite(injected) && injected >= 0) return injected
    return this.srtt === undefined ? this.o.minMs / this.o.factor : this.srtt + 4 * this.rttvar
  }

  /** How long a phase (commit, or reveal) stays open. */
  phaseMs (): number {
    return Math.round(Math.min(this.o.maxMs, Math.max(this.o.minMs, this.o.factor * this.estimate())))
  }
}
