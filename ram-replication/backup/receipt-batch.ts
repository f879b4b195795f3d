// Stripe receipts of one link, sent in batches. A receipt per stripe, sent at once, cost each
// hop of a forwarded link a short noise message and a yamux window update back per 128 KiB
// stripe, and let the primary send again one stripe per turn (one yamux frame per stripe).
// Held until RECEIPT_BATCH_BYTES of stripes are receipted, or RECEIPT_DELAY_MS after the first
// one, the receipts leave together (the frame channel joins the frames of one turn) and the
// primary refills its window with several stripes in one write. The batch stays well under a
// window (at least 4 stripes, network-profile.ts), so the primary never stalls waiting for it;
// the delay bounds the wait for the last stripes of an epoch.
import type { FrameChannel } from '../transport/frame-channel.ts'

const RECEIPT_BATCH_BYTES = 256 * 1024
const RECEIPT_DELAY_MS = 1

export class ReceiptBatch {
  private readonly channel: FrameChannel
  private frames: Uint8Array[] = []
  private bytes = 0
  private timer?: ReturnType<typeof setTimeout>

  constructor (channel: FrameChannel) {
    this.channel = channel
  }

  /** A receipt for `stripeBytes` of stripe held here. */
  add (receipt: Uint8Array, stripeBytes: number): void {
    this.frames.push(receipt)
    this.bytes += stripeBytes
    if (this.bytes >= RECEIPT_BATCH_BYTES) this.flush()
    else this.timer ??= setTimeout(() => { this.flush() }, RECEIPT_DELAY_MS)
  }

  /** Send every held receipt now (before an epoch's acknowledgement, so credit comes back first). */
  flush (): void {
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = undefined
    const frames = this.frames
    this.frames = []
    this.bytes = 0
    if (!this.channel.isOpen) return
    for (const frame of frames) this.channel.send(frame).catch(() => {})
  }

  /** The link closed: nothing more to send. */
  discard (): void {
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = undefined
    this.frames = []
    this.bytes = 0
  }
}
