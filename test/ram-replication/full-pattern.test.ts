// The `full` write pattern on a real guest (every engine this machine has): whole pages of
// incompressible data, and the guest's own record (stamps, checksum) still verifies memory.
import { deflateSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { GUEST_PAGE_SIZE, availableEngines, readPageWriterParams, startGuest, verifyGuestMemory } from '../../ram-replication/index.ts'
import type { GuestEngine } from '../../ram-replication/index.ts'

describe.each(availableEngines())('the full pattern on the %s engine', (engine: GuestEngine) => {
  it('fills whole pages with data deflate cannot shrink, and the verifier accepts them and catches one changed byte', async () => {
    const guest = await startGuest(engine, { memoryBytes: 4 * 1024 * 1024, workload: { pattern: 'full', dirtyRate: 0 } })
    try {
      await guest.waitForCounter(300, { signal: AbortSignal.timeout(20_000) })
      await guest.pause()
      const memory = guest.memory()
      expect(readPageWriterParams(memory)).toMatchObject({ pattern: 'full', bytesPerWrite: GUEST_PAGE_SIZE })
      const check = verifyGuestMemory(memory)
      expect(check.ok).toBe(true)
      expect(check.stampedPages).toBeGreaterThan(100)
      // A written page: its stamp (dword 0) is non-zero. Deflate gains nothing on it.
      const params = readPageWriterParams(memory)
      let page = params.dataStartPage
      // (not the page the guest was writing when it paused: that one may be torn, and is named)
      while (page === check.inflightPage || new DataView(memory.buffer, memory.byteOffset + page * GUEST_PAGE_SIZE).getUint32(0, true) === 0) page++
      const bytes = memory.slice(page * GUEST_PAGE_SIZE, (page + 1) * GUEST_PAGE_SIZE)
      expect(deflateSync(bytes).length).toBeGreaterThan(GUEST_PAGE_SIZE * 0.98)
      // The last dword of the page is part of the record too.
      memory[(page + 1) * GUEST_PAGE_SIZE - 1] ^= 1
      expect(verifyGuestMemory(memory).badPages).toEqual([page])
      memory[(page + 1) * GUEST_PAGE_SIZE - 1] ^= 1
    } finally {
      await guest.stop()
    }
  })
})
