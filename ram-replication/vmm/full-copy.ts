// The memory of a full checkpoint, copied while the vCPU is stopped (both engines). Pages the
// guest never touched are not backed and read as zero: they all share one zero page instead of
// being copied (copying them would fault in both sides, page by page). Copying into a fresh
// buffer costs ~12 µs per page on a busy 2-core machine (0.1 s for a 32 MiB guest, most of a
// second for 256 MiB), so the copy goes in turns of the event loop (../turn-budget.ts): leases
// are renewed and stripes flow meanwhile. The caller keeps the vCPU stopped until it is done.
import type { DirtyPage } from '../checkpoint.ts'
import { runInTurns } from '../turn-budget.ts'

/** Pages looked at per step (64 copied: a fraction of a millisecond). */
const STEP_PAGES = 64

/**
 * Every page of `memory`: a copy of each page `resident` marks touched (bit 0), `zeroPage` for
 * the others.
 */
export async function copyFullMemory (memory: Uint8Array, resident: Uint8Array, pageSize: number, zeroPage: Uint8Array): Promise<DirtyPage[]> {
  let touched = 0
  for (const flag of resident) touched += flag & 1
  const copy = new Uint8Array(touched * pageSize)
  const pages = new Array<DirtyPage>(resident.length)
  let index = 0
  let slot = 0
  await runInTurns(() => {
    const end = Math.min(pages.length, index + STEP_PAGES)
    for (; index < end; index++) {
      if ((resident[index] & 1) === 0) {
        pages[index] = { index, data: zeroPage }
        continue
      }
      const data = copy.subarray(slot * pageSize, (slot + 1) * pageSize)
      data.set(memory.subarray(index * pageSize, (index + 1) * pageSize))
      pages[index] = { index, data }
      slot++
    }
    return index === pages.length
  })
  return pages
}
