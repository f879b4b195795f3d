// A daemon's view of one VM, sampled from outside: `GET /vm/status` over the admin API's unix
// socket every few milliseconds (the socket reaches a daemon even when its network namespace is
// cut off). Each sample keeps when it was asked and when it was answered, so what it saw is
// placed in time conservatively: the daemon read the guest's counter somewhere in between.
import type { TestNode } from '../harness/index.ts'
import type { VmStatus } from '../../node/cli/commands/vm.ts'

export interface VmSample {
  /** performance.now() of this process when the request left and when its answer came back */
  askedAt: number
  answeredAt: number
  /** undefined: the daemon holds nothing of this VM (404), or did not answer */
  role?: string
  guestCounter?: number
  fenced?: boolean
}

export class VmProgressLog {
  readonly samples: VmSample[] = []
  private running = true
  private readonly done: Promise<void>

  readonly node: TestNode
  readonly vmId: string

  constructor (node: TestNode, vmId: string, intervalMs = 10) {
    this.node = node
    this.vmId = vmId
    this.done = this.loop(intervalMs)
  }

  private async loop (intervalMs: number): Promise<void> {
    while (this.running) {
      const askedAt = performance.now()
      let status: VmStatus | undefined
      try { status = await this.node.api<VmStatus>(`/vm/status?vmId=${encodeURIComponent(this.vmId)}`) } catch {}
      this.samples.push({ askedAt, answeredAt: performance.now(), role: status?.role, guestCounter: status?.guestCounter, fenced: status?.lease?.fenced })
      await new Promise(resolve => setTimeout(resolve, intervalMs))
    }
  }

  async stop (): Promise<void> {
    this.running = false
    await this.done
  }

  /** The guest ran here: samples that saw it as primary, in order. */
  private primarySamples (): VmSample[] {
    return this.samples.filter(s => s.role === 'primary')
  }

  /**
   * When the guest last made progress here, at the latest: the answer of the first sample that
   * saw its final counter value (undefined: it never moved while watched).
   */
  lastProgressBy (): number | undefined {
    const ran = this.primarySamples()
    let by: number | undefined
    for (let i = 1; i < ran.length; i++) if (ran[i].guestCounter !== ran[i - 1].guestCounter) by = ran[i].answeredAt
    return by
  }

  /**
   * When the guest started running here, at the earliest: the request of the last sample that
   * still saw this node without it running (undefined: it never ran here while watched).
   */
  startedAfter (): number | undefined {
    const first = this.samples.findIndex(s => s.role === 'primary')
    if (first < 0) return undefined
    return first === 0 ? this.samples[0].askedAt : this.samples[first - 1].askedAt
  }

  /** Whether the guest ever ran here while watched. */
  ranHere (): boolean {
    return this.primarySamples().length > 0
  }

  /** Samples asked after `at`. */
  since (at: number): VmSample[] {
    return this.samples.filter(s => s.askedAt > at)
  }
}
