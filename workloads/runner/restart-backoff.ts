// How long an instance that exited waits before its restart: doubling from the initial delay
// to the maximum, so a crashing app costs the node little, and back to the initial delay once
// the instance has shown it can stay up.
export class RestartBackoff {
  readonly #initialMs: number
  readonly #maxMs: number
  #nextMs: number

  constructor (initialMs: number, maxMs: number) {
    this.#initialMs = initialMs
    this.#maxMs = maxMs
    this.#nextMs = initialMs
  }

  next (): number {
    const delay = this.#nextMs
    this.#nextMs = Math.min(delay * 2, this.#maxMs)
    return delay
  }

  reset (): void {
    this.#nextMs = this.#initialMs
  }
}
