// The VMM against real KVM: dirty logging, the guest's own checksum, pause/resume, register
// save/restore into a second VM (the failover primitive), and the event loop while the vCPU runs.
import { afterEach, describe, expect, it } from 'vitest'
import {
  GUEST_PAGE_SIZE, GuestLayout, GuestStoppedError, InvalidGuestImageError, KvmGuest, allocateGuestMemory, kvmOpens,
  pagesWrittenBetween, probeKvm, verifyGuestMemory
} from '../../ram-replication/index.ts'
import type { Checkpoint } from '../../ram-replication/index.ts'

const kvm = kvmOpens()
if (!kvm) console.warn('KVM tests skipped: /dev/kvm cannot be opened on this machine')
const needsKvm = it.skipIf(!kvm)
const MiB = 1024 * 1024
/** The page holding the guest's parameters and state (counter, checksum): written on every write. */
const STATE_PAGE = GuestLayout.paramsAddress / GUEST_PAGE_SIZE
const DATA_START = GuestLayout.defaultDataStartPage

const guests: KvmGuest[] = []
async function start (...args: Parameters<typeof KvmGuest.start>): Promise<KvmGuest> {
  const guest = await KvmGuest.start(...args)
  guests.push(guest)
  return guest
}
afterEach(async () => {
  await Promise.all(guests.splice(0).map(async guest => { await guest.stop() }))
})

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** What a backup does: start from a full image, lay each epoch's pages over it. */
function applyCheckpoint (image: Uint8Array, checkpoint: Checkpoint): void {
  for (const page of checkpoint.pages) image.set(page.data, page.index * checkpoint.pageSize)
}

/** The guest's own xorshift32 page choice, recomputed independently for the expected dirty set. */
function expectedRandomPages (seed: number, writes: number, dataStart: number, dataPages: number): Set<number> {
  let x = seed >>> 0
  const pages = new Set<number>()
  for (let i = 0; i < writes; i++) {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    pages.add(dataStart + ((x >>> 8) % dataPages))
  }
  return pages
}

describe('KVM capabilities (skipped where /dev/kvm cannot be opened)', () => {
  needsKvm('reports API version 12 and the capabilities the VMM uses', () => {
    const report = probeKvm()
    console.info('KVM capability report: %j', { ...report, error: report.error?.message })
    expect(report.opens).toBe(true)
    expect(report.apiVersion).toBe(12)
    expect(report.userMemory).toBe(true)
    expect(report.immediateExit).toBe(true)
    expect(report.missing).toEqual([])
    expect(report.error).toBeUndefined()
  })
})

describe('KVM guest and dirty tracking (skipped where /dev/kvm cannot be opened)', () => {
  needsKvm('the dirty log holds exactly the pages a sequential guest wrote, plus its state page', async () => {
    const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'sequential', maxWrites: 300, reportEvery: 32 } })
    await guest.waitUntilHalted()
    expect(guest.state).toBe('halted')
    expect(guest.guestCounter()).toBe(300)
    const checkpoint = await guest.checkpoint(1)
    const expected = [STATE_PAGE, ...Array.from({ length: 300 }, (_, i) => DATA_START + i)]
    expect(checkpoint.pages.map(page => page.index)).toEqual(expected)
    // Nothing written since: the next epoch is empty.
    expect((await guest.checkpoint(2)).pages).toEqual([])
  })

  needsKvm('the dirty log of a random guest equals the pages its generator chose', async () => {
    const seed = 0x1234567
    const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'random', seed, maxWrites: 400, reportEvery: 50 } })
    await guest.waitUntilHalted()
    const checkpoint = await guest.checkpoint(1)
    const tracked = new Set(checkpoint.pages.map(page => page.index))
    const dataPages = 16 * MiB / GUEST_PAGE_SIZE - DATA_START
    const expected = expectedRandomPages(seed, 400, DATA_START, dataPages)
    expected.add(STATE_PAGE)
    expect(tracked).toEqual(expected)
    const stamped = new Set([STATE_PAGE, ...pagesWrittenBetween(guest.memory(), 0, 400)])
    expect(tracked).toEqual(stamped)
  })

  needsKvm('epoch after epoch, a backup image built from checkpoints matches the guest\'s own checksum', async () => {
    const guest = await start({ memoryBytes: 32 * MiB, workload: { pattern: 'hot', hotPages: 64, hotShare: 0.7, reportEvery: 32 } })
    const full = await guest.fullCheckpoint(1)
    expect(full.pages.length).toBe(32 * MiB / GUEST_PAGE_SIZE)
    const image = new Uint8Array(32 * MiB)
    applyCheckpoint(image, full)
    let previous = full.guestCounter
    let previousInflight = verifyGuestMemory(image).inflightPage
    for (let epoch = 2; epoch <= 6; epoch++) {
      await guest.waitForCounter(previous + 150)
      const checkpoint = await guest.checkpoint(epoch)
      expect(checkpoint.guestCounter).toBeGreaterThan(previous)
      applyCheckpoint(image, checkpoint)
      const check = verifyGuestMemory(image)
      expect(check.ok).toBe(true)
      expect(check.counter).toBe(checkpoint.guestCounter)
      // The epoch's dirty set is exactly the pages stamped by this epoch's writes, plus the state
      // page, plus the pages in flight when this and the last checkpoint stopped the guest (the
      // kick lands anywhere: a write the last epoch cut finishes in this one, one this epoch cut
      // has begun).
      const written = new Set([STATE_PAGE, ...pagesWrittenBetween(image, previous, checkpoint.guestCounter)])
      for (const page of [previousInflight, check.inflightPage]) if (page !== 0) written.add(page)
      expect(new Set(checkpoint.pages.map(page => page.index))).toEqual(written)
      previous = checkpoint.guestCounter
      previousInflight = check.inflightPage
    }
  })

  needsKvm('pause stops the guest and resume lets it go on; its memory verifies while paused', async () => {
    const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'random', reportEvery: 16 } })
    await guest.waitForCounter(200)
    await guest.pause()
    expect(guest.state).toBe('paused')
    const paused = guest.guestCounter()
    const check = verifyGuestMemory(guest.memory())
    expect(check.ok).toBe(true)
    expect(check.counter).toBe(paused)
    await sleep(300)
    expect(guest.guestCounter()).toBe(paused)
    guest.resume()
    expect(await guest.waitForCounter(paused + 100)).toBeGreaterThanOrEqual(paused + 100)
    // Throttle 1 stops it too, throttle 0 lets it run again.
    guest.setThrottle(1)
    await sleep(50)
    const throttled = guest.guestCounter()
    await sleep(200)
    expect(guest.state).toBe('throttled')
    expect(guest.guestCounter()).toBe(throttled)
    guest.setThrottle(0)
    await guest.waitForCounter(throttled + 50)
  })

  needsKvm('a second VM built from saved memory and registers continues the counter (failover)', async () => {
    const primary = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'random', reportEvery: 16 } })
    const image = allocateGuestMemory(16 * MiB)
    applyCheckpoint(image, await primary.fullCheckpoint(1))
    await primary.waitForCounter(primary.guestCounter() + 200)
    const last = await primary.checkpoint(2)
    applyCheckpoint(image, last)
    await primary.stop()
    expect(last.vcpu.regs.byteLength).toBe(144)
    expect(last.vcpu.sregs.byteLength).toBe(312)

    const backup = await KvmGuest.restore({ vmId: last.vmId, memory: image, memoryBytes: last.memoryBytes, pageSize: last.pageSize, vcpu: last.vcpu }, { paused: true })
    guests.push(backup)
    expect(backup.vmId).toBe(primary.vmId)
    // The image's memory was adopted, not copied.
    expect(backup.memory().buffer).toBe(image.buffer)
    expect(backup.guestCounter()).toBe(last.guestCounter)
    backup.resume()
    await backup.waitForCounter(last.guestCounter + 200)
    await backup.pause()
    const check = verifyGuestMemory(backup.memory())
    expect(check.ok).toBe(true)
    expect(check.counter).toBeGreaterThanOrEqual(last.guestCounter + 200)
  })

  needsKvm('restoring from copied memory works too, and a malformed image is refused', async () => {
    const primary = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'sequential', reportEvery: 16 } })
    await primary.waitForCounter(100)
    await primary.pause()
    const full = await primary.fullCheckpoint(1)
    const memory = new Uint8Array(16 * MiB)
    applyCheckpoint(memory, full)
    await expect(KvmGuest.restore({ vmId: 'x', memory: memory.subarray(0, 8 * MiB), memoryBytes: 16 * MiB, pageSize: 4096, vcpu: full.vcpu })).rejects.toBeInstanceOf(InvalidGuestImageError)
    await expect(KvmGuest.restore({ vmId: 'x', memory, memoryBytes: 16 * MiB, pageSize: 4096, vcpu: { regs: new Uint8Array(10), sregs: full.vcpu.sregs } })).rejects.toBeInstanceOf(InvalidGuestImageError)
    const copy = await KvmGuest.restore({ vmId: 'copy', memory, memoryBytes: 16 * MiB, pageSize: 4096, vcpu: full.vcpu })
    guests.push(copy)
    expect(copy.memory().buffer).not.toBe(memory.buffer)
    await copy.waitForCounter(full.guestCounter + 100)
    // The primary, still paused, did not move.
    expect(primary.guestCounter()).toBe(full.guestCounter)
  })

  needsKvm('the event loop stays free while the vCPU runs a long slice', async () => {
    // A report only every 200000 writes: one KVM_RUN lasts about a second, far longer than the timers below.
    const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'random', reportEvery: 200000 } })
    await guest.waitForCounter(1)
    const before = guest.guestCounter()
    const lateness: number[] = []
    for (let i = 0; i < 10; i++) {
      const at = performance.now()
      await sleep(20)
      lateness.push(performance.now() - at - 20)
    }
    expect(Math.max(...lateness)).toBeLessThan(250)
    // The guest wrote meanwhile (its counter lives in guest memory, read here without an exit).
    expect(guest.guestCounter()).toBeGreaterThan(before)
    await guest.waitForCounter(before + 200000)
    expect(guest.stats().progressExits).toBeGreaterThan(0)
  })

  needsKvm('the configured rate and the throttle bound the writes, and stop() frees the guest', async () => {
    const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'sequential', dirtyRate: 2000, reportEvery: 16 } })
    await guest.waitForCounter(16)
    const from = guest.guestCounter()
    const startedAt = performance.now()
    await sleep(600)
    const writes = guest.guestCounter() - from
    const elapsed = (performance.now() - startedAt) / 1000
    expect(writes).toBeGreaterThan(0)
    expect(writes).toBeLessThanOrEqual(2000 * elapsed + 2 * 16 + 20)
    // Throttled by half, the same guest writes at most half as fast.
    guest.setThrottle(0.5)
    await sleep(100)
    const throttledFrom = guest.guestCounter()
    const throttledAt = performance.now()
    await sleep(600)
    const throttledWrites = guest.guestCounter() - throttledFrom
    const throttledElapsed = (performance.now() - throttledAt) / 1000
    expect(throttledWrites).toBeGreaterThan(0)
    expect(throttledWrites).toBeLessThanOrEqual(1000 * throttledElapsed + 2 * 16 + 20)
    await guest.stop()
    expect(guest.state).toBe('stopped')
    expect(guest.memory().byteLength).toBe(0)
    await expect(guest.checkpoint(1)).rejects.toBeInstanceOf(GuestStoppedError)
  })

  needsKvm('a checkpoint whose signal is aborted fails and leaves the guest running', async () => {
    const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'sequential', reportEvery: 16 } })
    await guest.waitForCounter(100)
    await expect(guest.checkpoint(1, { signal: AbortSignal.abort() })).rejects.toThrow()
    const counter = guest.guestCounter()
    await guest.waitForCounter(counter + 100)
    expect(guest.state).toBe('running')
  })

  needsKvm('the default 256 MiB guest takes a full checkpoint of every page', async () => {
    const guest = await start({ workload: { pattern: 'hot', reportEvery: 32 } })
    expect(guest.memoryBytes).toBe(256 * MiB)
    await guest.waitForCounter(100)
    const full = await guest.fullCheckpoint(1)
    expect(full.pages.length).toBe(65536)
    const image = new Uint8Array(256 * MiB)
    applyCheckpoint(image, full)
    const check = verifyGuestMemory(image)
    expect(check.ok).toBe(true)
    expect(check.counter).toBe(full.guestCounter)
  })
})
