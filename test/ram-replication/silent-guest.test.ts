// A guest that never reports (reportEvery 0) can still be stopped at any instant: on KVM the
// VMM kicks its vCPU out of KVM_RUN (immediate_exit and a signal to the vCPU's thread), on the
// interpreter the turn under way ends. Checkpoints land mid-write, and the images they build
// verify (the one page in flight is named by the guest), restore and run on; pacing and
// throttling hold without a single report.
import { afterEach, describe, expect, it } from 'vitest'
import { GUEST_PAGE_SIZE, allocateGuestMemory, guestRestorer, startGuest, verifyGuestMemory } from '../../ram-replication/index.ts'
import type { Checkpoint, RunningGuest } from '../../ram-replication/index.ts'
import { guestEngineVariants, titled } from '../harness/capabilities.ts'

const MiB = 1024 * 1024
const guests: RunningGuest[] = []
afterEach(async () => {
  await Promise.all(guests.splice(0).map(async guest => { await guest.stop() }))
})
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

function applyCheckpoint (image: Uint8Array, checkpoint: Checkpoint): void {
  for (const page of checkpoint.pages) image.set(page.data, page.index * checkpoint.pageSize)
}

for (const { engine, capability } of guestEngineVariants()) {
  describe.skipIf(capability.missing !== undefined)(titled(`a guest that never reports, on the ${engine} engine`, capability), () => {
    it('is checkpointed every 10 ms, mid-write, and every image verifies and resumes elsewhere', async () => {
      const memoryBytes = 16 * MiB
      const guest = await startGuest(engine, { memoryBytes, workload: { pattern: 'full', reportEvery: 0 } })
      guests.push(guest)
      await guest.waitForCounter(50)
      const image = allocateGuestMemory(memoryBytes)
      const full = await guest.fullCheckpoint(1)
      applyCheckpoint(image, full)
      let last = full
      let midWrite = 0
      for (let epoch = 2; epoch <= 30; epoch++) {
        await sleep(10)
        const checkpoint = await guest.checkpoint(epoch)
        expect(checkpoint.guestCounter).toBeGreaterThanOrEqual(last.guestCounter)
        applyCheckpoint(image, checkpoint)
        const check = verifyGuestMemory(image)
        expect(check.badPages).toEqual([])
        expect(check.ok).toBe(true)
        expect(check.counter).toBe(checkpoint.guestCounter)
        if (check.inflightPage !== 0) midWrite++
        last = checkpoint
      }
      // The guest ran on between checkpoints and never once reported.
      expect(last.guestCounter).toBeGreaterThan(full.guestCounter)
      expect(guest.stats().progressExits).toBe(0)
      console.info('%s: 29 checkpoints of a silent guest, %d of them mid-write, counter %d → %d, last pause %s ms',
        engine, midWrite, full.guestCounter, last.guestCounter, guest.stats().lastCheckpoint?.parkMs.toFixed(2))
      if (engine === 'kvm') expect((guest.stats() as { kicks?: number }).kicks).toBeGreaterThanOrEqual(29)

      // The last image, taken wherever the vCPU was, resumes elsewhere and finishes what it was writing.
      await guest.stop()
      const copy = await guestRestorer(engine)({ vmId: last.vmId, memory: image, memoryBytes, pageSize: GUEST_PAGE_SIZE, vcpu: last.vcpu })
      guests.push(copy)
      // (it runs from the moment it is restored)
      expect(copy.guestCounter()).toBeGreaterThanOrEqual(last.guestCounter)
      await copy.waitForCounter(last.guestCounter + 20)
      await copy.pause()
      const after = verifyGuestMemory(copy.memory())
      expect(after.ok).toBe(true)
      expect(after.counter).toBeGreaterThanOrEqual(last.guestCounter + 20)
    })

    it('pause, throttle and pacing hold it without a report', async () => {
      const guest = await startGuest(engine, { memoryBytes: 16 * MiB, workload: { pattern: 'full', reportEvery: 0 } })
      guests.push(guest)
      await guest.waitForCounter(20)
      await guest.pause()
      const paused = guest.guestCounter()
      await sleep(100)
      expect(guest.guestCounter()).toBe(paused)
      expect(verifyGuestMemory(guest.memory()).ok).toBe(true)
      guest.resume()
      await guest.waitForCounter(paused + 20)

      guest.setThrottle(1)
      await sleep(50)
      const throttled = guest.guestCounter()
      await sleep(150)
      expect(guest.state).toBe('throttled')
      expect(guest.guestCounter()).toBe(throttled)

      // Paced far below what the engine writes unpaced (the interpreter ~1,400 pages/s of this
      // pattern here, KVM over 100,000). A slice lasts at least a timer tick, in which KVM
      // writes a few hundred pages: the bound allows one such burst.
      const rate = engine === 'kvm' ? 5000 : 200
      guest.setThrottle(0)
      guest.setDirtyRate(rate)
      const before = guest.guestCounter()
      await sleep(1000)
      const written = guest.guestCounter() - before
      console.info('%s: paced to %d pages/s, wrote %d pages in 1 s', engine, rate, written)
      expect(written).toBeGreaterThan(0)
      expect(written).toBeLessThan(2 * rate)
      expect(guest.stats().progressExits).toBe(0)
    })
  })
}
