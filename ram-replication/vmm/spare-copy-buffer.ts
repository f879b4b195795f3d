// A copy buffer for the next checkpoint, faulted in while the guest runs: touching fresh memory
// costs ~12 µs per page on this machine, which would otherwise land inside the pause. Each
// checkpoint hands its buffer to the replication side for good, so the next one is prepared
// anew once the guest runs again.
const PAGE = 4096

export class SpareCopyBuffer {
  private spare?: Uint8Array<ArrayBuffer>
  private timer?: NodeJS.Immediate
  private closed = false

  /** A buffer of `bytes`: the prepared one if it is large enough, otherwise a fresh one. */
  take (bytes: number): Uint8Array<ArrayBuffer> {
    const spare = this.spare
    if (spare != null && spare.byteLength >= bytes) {
      this.spare = undefined
      return spare.subarray(0, bytes)
    }
    return new Uint8Array(bytes)
  }

  /** Soon (not now: the guest runs first), fault in a buffer a little larger than the last epoch's. */
  prepare (lastPages: number): void {
    if (this.timer != null || this.closed) return
    this.timer = setImmediate(() => {
      this.timer = undefined
      const bytes = Math.max(64, Math.ceil(lastPages * 1.25)) * PAGE
      if (this.closed || (this.spare != null && this.spare.byteLength >= bytes)) return
      const buffer = new Uint8Array(bytes)
      for (let offset = 0; offset < bytes; offset += PAGE) buffer[offset] = 0
      this.spare = buffer
    })
  }

  close (): void {
    this.closed = true
    if (this.timer != null) clearImmediate(this.timer)
    this.spare = undefined
  }
}
