// The promises callers wait on while a guest runs: "the vCPU is parked" (pause, checkpoint) and
// "the guest got this far" (counter, halt). Each waiter can be abandoned through its AbortSignal.

interface Waiter { resolve: () => void, reject: (error: Error) => void, signal?: AbortSignal, onAbort?: () => void }

export class GuestWaiters {
  private parkWaiters: Waiter[] = []
  private progressWaiters: Array<{ check: () => boolean, waiter: Waiter }> = []

  /** Resolves at the next `parked()`. */
  async untilParked (signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const waiter = this.waiter(resolve, reject, signal, () => { this.parkWaiters = this.parkWaiters.filter(other => other !== waiter) })
      this.parkWaiters.push(waiter)
    })
  }

  /** Resolves once `check()` holds at a `progress()` (rejects with what `progress` is given). */
  async until (check: () => boolean, signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const entry = { check, waiter: this.waiter(resolve, reject, signal, () => { this.progressWaiters = this.progressWaiters.filter(other => other !== entry) }) }
      this.progressWaiters.push(entry)
    })
  }

  /** Whether anyone waits for progress. */
  get awaitingProgress (): boolean {
    return this.progressWaiters.length > 0
  }

  parked (): void {
    const waiters = this.parkWaiters
    this.parkWaiters = []
    for (const waiter of waiters) this.settle(waiter)
  }

  /** Re-check the progress waiters; `failure` (if any) rejects those whose condition cannot come true any more. */
  progress (failure?: () => Error | undefined): void {
    if (this.progressWaiters.length === 0) return
    const remaining: typeof this.progressWaiters = []
    for (const entry of this.progressWaiters) {
      if (entry.check()) {
        this.settle(entry.waiter)
        continue
      }
      const error = failure?.()
      if (error != null) this.settle(entry.waiter, error)
      else remaining.push(entry)
    }
    this.progressWaiters = remaining
  }

  /** The guest is gone: parked waiters resolve, progress waiters reject with `error`. */
  close (error: Error): void {
    this.parked()
    const waiters = this.progressWaiters
    this.progressWaiters = []
    for (const { waiter } of waiters) this.settle(waiter, error)
  }

  private waiter (resolve: () => void, reject: (error: Error) => void, signal: AbortSignal | undefined, forget: () => void): Waiter {
    const waiter: Waiter = { resolve, reject, signal }
    if (signal != null) {
      waiter.onAbort = () => {
        forget()
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
      }
      signal.addEventListener('abort', waiter.onAbort, { once: true })
    }
    return waiter
  }

  private settle (waiter: Waiter, error?: Error): void {
    if (waiter.onAbort != null) waiter.signal?.removeEventListener('abort', waiter.onAbort)
    if (error == null) waiter.resolve()
    else waiter.reject(error)
  }
}
