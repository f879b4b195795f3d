// When each attempt on a key begins and ends, from an agreed start (see AttemptSlots).
import { MAX_ATTEMPT } from './messages.ts'

/**
 * Attempts laid out in time from an agreed start (for epochs: when the previous certified epoch
 * says the next one is due), so members that crashed, lagged or sat in another partition are on
 * the same attempt as soon as they can talk again. Slot k lasts ms × (1 + ⌊k / n⌋): every
 * proposer gets a turn at each length, and the slots outgrow any delay once the network is
 * stable. Only liveness rests on clocks; safety does not (locks.ts).
 */
export interface AttemptSlots {
  from: number
  ms: number
}

export function slotAt (slots: AttemptSlots, members: number, now: number): { attempt: number, endsAt: number } {
  let start = slots.from
  for (let k = 0; k < MAX_ATTEMPT; k++) {
    const end = start + slots.ms * (1 + Math.floor(k / members))
    if (now < end) return { attempt: k, endsAt: end }
    start = end
  }
  return { attempt: MAX_ATTEMPT, endsAt: Number.POSITIVE_INFINITY }
}
