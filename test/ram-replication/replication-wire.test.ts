// The stripe wire format and the backup's epoch staging, on plain bytes.
import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  EpochEncoder, decodeFrame, encodePageDelta, applyPageDelta, validatePageDelta,
  encodeEpochApplied, encodeStripeReceipt, encodeOrigin, encodeHeartbeat, encodeRelease, encodeLinkNonce,
  InvalidFrameError, FrameIntegrityError, InvalidPageDeltaError,
  GuestReplica, ReplicaMismatchError, StagingOverflowError
} from '../../ram-replication/index.ts'
import type { AppliedEpoch, Checkpoint, EncodedEpoch, StripeFrame } from '../../ram-replication/index.ts'

const PAGE = 4096
const MEMORY = 64 * PAGE

function join (chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks))
}

/** A checkpoint made from a byte image: the pages listed, copied out of `image`. */
function checkpointOf (image: Uint8Array, epoch: number, indexes: number[], full = false): Checkpoint {
  return {
    vmId: 'vm-wire',
    epoch,
    full,
    memoryBytes: image.length,
    pageSize: PAGE,
    pages: indexes.map(index => ({ index, data: image.slice(index * PAGE, (index + 1) * PAGE) })),
    vcpu: { regs: Uint8Array.of(1, 2, 3, epoch & 0xff), sregs: Uint8Array.of(9, 8, 7) },
    guestCounter: epoch * 1000,
    takenAt: 1_700_000_000_000 + epoch
  }
}

function stripesOf (encoded: EncodedEpoch): Array<{ frame: StripeFrame, bytes: number }> {
  return encoded.stripes.map(stripe => {
    const body = join(stripe.chunks)
    return { frame: decodeFrame(body) as StripeFrame, bytes: body.length }
  })
}

describe('page deltas', () => {
  it('rebuild the new page from the old one for any change', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: PAGE, maxLength: PAGE }), fc.array(fc.tuple(fc.nat(PAGE - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 300 }), (previous, writes) => {
      const current = previous.slice()
      for (const [offset, value] of writes) current[offset] = value
      const delta = encodePageDelta(previous, current, PAGE)
      if (delta == null) return
      // Pages that are not word-aligned in their buffers take the byte-wise path: same delta.
      const unaligned = new Uint8Array(2 * PAGE + 1)
      unaligned.set(previous, 1)
      unaligned.set(current, PAGE + 1)
      expect(encodePageDelta(unaligned.subarray(1, PAGE + 1), unaligned.subarray(PAGE + 1), PAGE)).toEqual(delta)
      validatePageDelta(delta, PAGE)
      const rebuilt = previous.slice()
      applyPageDelta(rebuilt, delta)
      expect(Buffer.from(rebuilt).equals(current)).toBe(true)
    }), { numRuns: 200 })
  })

  it('give up when the delta would not pay and refuse deltas that run off the page', () => {
    const previous = randomBytes(PAGE)
    const current = randomBytes(PAGE)
    expect(encodePageDelta(previous, current, PAGE / 2)).toBeNull()
    expect(() => { validatePageDelta(Uint8Array.of(0xff, 0x1f, 4, 1, 2, 3, 4), PAGE) }).toThrow(InvalidPageDeltaError)
    expect(() => { validatePageDelta(Uint8Array.of(0, 8, 1), PAGE) }).toThrow(InvalidPageDeltaError)
  })
})

describe('stripe frames', () => {
  it('carry pages, zero markers, deltas and the vCPU state across the wire', () => {
    const image = new Uint8Array(MEMORY)
    image.set(randomBytes(PAGE), 3 * PAGE)
    image.set(randomBytes(PAGE), 7 * PAGE)
    const encoder = new EpochEncoder({ stripeBytes: 1 << 20 })
    encoder.encode(checkpointOf(image, 1, [3, 7]))
    image[3 * PAGE + 100] ^= 0xff
    const encoded = encoder.encode(checkpointOf(image, 2, [3, 5, 7]))
    expect(encoded.deltaPages).toBe(2)
    expect(encoded.zeroPages).toBe(1)
    expect(encoded.bytes).toBeLessThan(PAGE)
    const [{ frame }] = stripesOf(encoded)
    expect(frame).toMatchObject({ kind: 'stripe', vmId: 'vm-wire', epoch: 2, stripeIndex: 0, stripeCount: 1, memoryBytes: MEMORY, pageSize: PAGE, guestCounter: 2000 })
    expect(frame.pages.map(page => [page.index, page.encoding])).toEqual([[3, 'delta'], [5, 'zero'], [7, 'delta']])
    expect([...frame.vcpu!.regs]).toEqual([1, 2, 3, 2])
  })

  it('split an epoch into stripes of about the configured size, the vCPU in stripe 0 only', () => {
    const image = new Uint8Array(randomBytes(MEMORY))
    const encoded = new EpochEncoder({ stripeBytes: 8 * PAGE }).encode(checkpointOf(image, 1, [...Array(64).keys()], true))
    expect(encoded.stripes.length).toBe(8)
    const frames = stripesOf(encoded).map(stripe => stripe.frame)
    expect(frames.every(frame => frame.stripeCount === 8)).toBe(true)
    expect(frames.map(frame => frame.vcpu != null)).toEqual([true, false, false, false, false, false, false, false])
    expect(frames.flatMap(frame => frame.pages.map(page => page.index))).toEqual([...Array(64).keys()])
  })

  it('carry the guest engine in stripe 0 only; a checkpoint without one (an older primary) carries none', () => {
    const image = new Uint8Array(randomBytes(MEMORY))
    const withEngine = new EpochEncoder({ stripeBytes: 8 * PAGE }).encode({ ...checkpointOf(image, 1, [...Array(32).keys()], true), engine: 'interpreted' })
    expect(stripesOf(withEngine).map(stripe => stripe.frame.engine)).toEqual(['interpreted', undefined, undefined, undefined])
    const without = new EpochEncoder().encode(checkpointOf(image, 2, [1]))
    expect(stripesOf(without)[0].frame.engine).toBeUndefined()
  })

  it('reject a flipped bit with FrameIntegrityError and a cut frame with InvalidFrameError', () => {
    const image = new Uint8Array(randomBytes(MEMORY))
    const body = join(new EpochEncoder().encode(checkpointOf(image, 1, [1, 2])).stripes[0].chunks)
    const flipped = body.slice()
    flipped[body.length - 100] ^= 1
    expect(() => decodeFrame(flipped)).toThrow(FrameIntegrityError)
    // Opened by a sealed link, the hash is the primary's as carried: the AEAD refuses an altered
    // frame before it gets here (link-seal.test.ts), and the fields are still validated.
    expect((decodeFrame(flipped, { authenticated: true }) as StripeFrame).hash).toEqual(new Uint8Array(body.subarray(body.length - 32)))
    expect(() => decodeFrame(body.subarray(0, body.length - 40), { authenticated: true })).toThrow(InvalidFrameError)
    expect(() => decodeFrame(body.subarray(0, body.length - 40))).toThrow(InvalidFrameError)
    const wrongVersion = body.slice()
    wrongVersion[0] = 9
    expect(() => decodeFrame(wrongVersion)).toThrow(InvalidFrameError)
  })

  it('reject page indexes beyond the guest and random garbage, never anything else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      try {
        decodeFrame(bytes)
      } catch (error) {
        expect(error instanceof InvalidFrameError || error instanceof FrameIntegrityError).toBe(true)
      }
    }), { numRuns: 500 })
  })

  it('round-trip the control frames', () => {
    const contentHash = new Uint8Array(randomBytes(32))
    const memoryHash = new Uint8Array(randomBytes(32))
    expect(decodeFrame(encodeEpochApplied({ vmId: 'vm', epoch: 2 ** 40, guestCounter: 77, contentHash, memoryHash }))).toEqual({ kind: 'epoch-applied', vmId: 'vm', epoch: 2 ** 40, guestCounter: 77, contentHash, memoryHash })
    expect(decodeFrame(encodeStripeReceipt('vm', 5, 3))).toEqual({ kind: 'stripe-receipt', vmId: 'vm', epoch: 5, stripeIndex: 3 })
    expect(decodeFrame(encodeOrigin({ peerId: '12D3KooWabc', run: 0, salt: new Uint8Array(0) }))).toEqual({ kind: 'origin', peerId: '12D3KooWabc', run: 0, salt: new Uint8Array(0) })
    const nonce = new Uint8Array(randomBytes(16))
    expect(decodeFrame(encodeOrigin({ peerId: '12D3KooWabc', run: 1_800_000_000_000 * 1024, salt: nonce }))).toEqual({ kind: 'origin', peerId: '12D3KooWabc', run: 1_800_000_000_000 * 1024, salt: nonce })
    expect(decodeFrame(encodeLinkNonce(nonce))).toEqual({ kind: 'link-nonce', nonce })
    // A nonce of any other length is refused at decoding: the key derivation never sees it.
    expect(() => decodeFrame(encodeOrigin({ peerId: '12D3KooWabc', run: 0, salt: Uint8Array.of(1, 2, 3) }))).toThrow(InvalidFrameError)
    expect(() => decodeFrame(encodeLinkNonce(new Uint8Array(15)))).toThrow(InvalidFrameError)
    expect(decodeFrame(encodeHeartbeat('vm', 9, 1234.5))).toEqual({ kind: 'heartbeat', vmId: 'vm', epoch: 9, sentAt: 1234.5 })
    expect(decodeFrame(encodeRelease('vm'))).toEqual({ kind: 'release', vmId: 'vm' })
  })
})

describe('a backup replica', () => {
  /** A replica that records the epochs it applied, in order. */
  function replicaOf (options: { hashMemory?: boolean } = {}): { replica: GuestReplica, applied: AppliedEpoch[] } {
    const applied: AppliedEpoch[] = []
    const replica = new GuestReplica({ vmId: 'vm-wire', origin: 'p', memoryBytes: MEMORY, pageSize: PAGE, ...options, onApplied: (epoch) => { applied.push(epoch) } })
    return { replica, applied }
  }

  it('applies an epoch only when all its stripes are in, in any order, ignoring duplicates', async () => {
    const image = new Uint8Array(randomBytes(MEMORY))
    const encoder = new EpochEncoder({ stripeBytes: 4 * PAGE })
    const { replica, applied } = replicaOf()
    const first = stripesOf(encoder.encode(checkpointOf(image, 1, [...Array(64).keys()], true)))
    expect(first.length).toBeGreaterThan(4)
    const shuffled = [...first].reverse()
    for (const stripe of shuffled.slice(0, -1)) {
      replica.accept(stripe.frame, stripe.bytes)
      replica.accept(stripe.frame, stripe.bytes)
    }
    await replica.whenIdle()
    expect(applied).toEqual([])
    expect(replica.appliedEpoch).toBe(0)
    expect(replica.memory.every(byte => byte === 0)).toBe(true)
    const last = shuffled[shuffled.length - 1]
    replica.accept(last.frame, last.bytes)
    await replica.whenIdle()
    expect(applied.map(epoch => epoch.epoch)).toEqual([1])
    expect(Buffer.from(replica.memory).equals(image)).toBe(true)
    expect(replica.guestCounter).toBe(1000)
    expect(replica.stagedBytes).toBe(0)
  })

  it('holds a later epoch until the one before it is complete, then applies both in order', async () => {
    const image = new Uint8Array(randomBytes(MEMORY))
    const encoder = new EpochEncoder({ stripeBytes: 2 * PAGE })
    const { replica, applied } = replicaOf()
    for (const stripe of stripesOf(encoder.encode(checkpointOf(image, 1, [...Array(64).keys()], true)))) replica.accept(stripe.frame, stripe.bytes)
    await replica.whenIdle()
    image.set(randomBytes(PAGE * 4), 10 * PAGE)
    const second = stripesOf(encoder.encode(checkpointOf(image, 2, [10, 11, 12, 13])))
    const afterSecond = image.slice()
    image[12 * PAGE + 5] ^= 0x55
    const third = stripesOf(encoder.encode(checkpointOf(image, 3, [12])))
    for (const stripe of third) replica.accept(stripe.frame, stripe.bytes)
    replica.accept(second[0].frame, second[0].bytes)
    await replica.whenIdle()
    expect(applied.map(epoch => epoch.epoch)).toEqual([1])
    expect(replica.appliedEpoch).toBe(1)
    for (const stripe of second.slice(1, -1)) replica.accept(stripe.frame, stripe.bytes)
    await replica.whenIdle()
    expect(replica.appliedEpoch).toBe(1)
    expect(Buffer.from(replica.memory).equals(afterSecond)).toBe(false)
    replica.accept(second[second.length - 1].frame, second[second.length - 1].bytes)
    await replica.whenIdle()
    expect(applied.map(epoch => epoch.epoch)).toEqual([1, 2, 3])
    expect(Buffer.from(replica.memory).equals(image)).toBe(true)
    expect(replica.guestCounter).toBe(3000)
  })

  it('acknowledges with the same content hash the primary computed, and a memory hash when asked', async () => {
    const image = new Uint8Array(randomBytes(MEMORY))
    const encoded = new EpochEncoder({ stripeBytes: 16 * PAGE }).encode(checkpointOf(image, 1, [...Array(64).keys()], true))
    const { replica, applied } = replicaOf({ hashMemory: true })
    for (const stripe of stripesOf(encoded)) replica.accept(stripe.frame, stripe.bytes)
    await replica.whenIdle()
    expect(Buffer.from(applied[0].contentHash).equals(encoded.contentHash)).toBe(true)
    expect(Buffer.from(applied[0].memoryHash!).toString('hex')).toBe(createHash('sha256').update(image).digest('hex'))
  })

  it('applies and hashes a large full epoch over several turns of the event loop, holding later epochs until the hash is out', async () => {
    const memoryBytes = 32 * 1024 * 1024
    const image = new Uint8Array(memoryBytes)
    for (let offset = 0; offset < memoryBytes; offset += PAGE) image.set(randomBytes(64), offset)
    const encoder = new EpochEncoder()
    const applied: AppliedEpoch[] = []
    const replica = new GuestReplica({ vmId: 'vm-wire', origin: 'p', memoryBytes, pageSize: PAGE, hashMemory: true, onApplied: (epoch) => { applied.push(epoch) } })
    const hashOf = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')
    const epochOf = (epoch: number, pages: number[], full = false): Array<{ frame: StripeFrame, bytes: number }> =>
      stripesOf(encoder.encode({ ...checkpointOf(image, epoch, pages, full), memoryBytes }))
    // The timer shows the event loop turning while the replica works.
    let ticks = 0
    const ticker = setInterval(() => { ticks++ }, 1)
    try {
      for (const stripe of epochOf(1, [...Array(memoryBytes / PAGE).keys()], true)) replica.accept(stripe.frame, stripe.bytes)
      // the last stripe started the work: what does not fit in this turn goes on in later ones
      expect(applied).toEqual([])
      await replica.whenIdle()
      expect(ticks).toBeGreaterThan(0)
      expect(applied.map(epoch => epoch.epoch)).toEqual([1])
      expect(Buffer.from(applied[0].memoryHash!).toString('hex')).toBe(hashOf(image))

      image.set(randomBytes(PAGE), 7 * PAGE)
      for (const stripe of epochOf(2, [7])) replica.accept(stripe.frame, stripe.bytes)
      const afterSecond = hashOf(image)
      // epoch 2 is in memory and being hashed: epoch 3 waits in staging until the digest is out
      image.set(randomBytes(PAGE), 9 * PAGE)
      for (const stripe of epochOf(3, [9])) replica.accept(stripe.frame, stripe.bytes)
      expect(replica.appliedEpoch).toBe(2)
      expect(replica.pendingEpochs()).toEqual([3])
      await replica.whenIdle()
      expect(applied.map(epoch => epoch.epoch)).toEqual([1, 2, 3])
      expect(Buffer.from(applied[1].memoryHash!).toString('hex')).toBe(afterSecond)
      expect(Buffer.from(applied[2].memoryHash!).toString('hex')).toBe(hashOf(image))
      expect(Buffer.from(replica.memory).equals(image)).toBe(true)
    } finally {
      clearInterval(ticker)
    }
  })

  it('receives first writes to zero pages and rewrites of sent pages as small deltas, and rebuilds them exactly', async () => {
    const image = new Uint8Array(MEMORY)
    image.set(randomBytes(PAGE), 4 * PAGE)
    const encoder = new EpochEncoder()
    const { replica } = replicaOf()
    for (const stripe of stripesOf(encoder.encode(checkpointOf(image, 1, [...Array(64).keys()], true)))) replica.accept(stripe.frame, stripe.bytes)
    for (let epoch = 2; epoch <= 4; epoch++) {
      const touched = [4, 10 + epoch, 40]
      for (const index of touched) image.set(randomBytes(64), index * PAGE + 128 * epoch)
      const encoded = encoder.encode(checkpointOf(image, epoch, touched))
      expect(encoded.deltaPages).toBe(3)
      expect(encoded.bytes).toBeLessThan(1024)
      for (const stripe of stripesOf(encoded)) replica.accept(stripe.frame, stripe.bytes)
      await replica.whenIdle()
      expect(replica.appliedEpoch).toBe(epoch)
      expect(Buffer.from(replica.memory).equals(image)).toBe(true)
    }
  })

  it('rebuilds memory from a later full epoch, zeroing the pages it leaves out (a resync)', async () => {
    const image = new Uint8Array(randomBytes(MEMORY))
    const encoder = new EpochEncoder()
    const { replica } = replicaOf()
    for (const stripe of stripesOf(encoder.encode(checkpointOf(image, 1, [...Array(64).keys()], true)))) replica.accept(stripe.frame, stripe.bytes)
    const resync = new Uint8Array(MEMORY)
    resync.set(randomBytes(PAGE * 3), 20 * PAGE)
    for (const stripe of stripesOf(encoder.encode(checkpointOf(resync, 9, [20, 21, 22], true)))) replica.accept(stripe.frame, stripe.bytes)
    await replica.whenIdle()
    expect(replica.appliedEpoch).toBe(9)
    expect(Buffer.from(replica.memory).equals(resync)).toBe(true)
  })

  it('stages incomplete epochs only up to its bound: a stripe past it is refused, memory untouched, and the replica goes on', async () => {
    const image = new Uint8Array(randomBytes(MEMORY))
    const encoder = new EpochEncoder({ stripeBytes: 4 * PAGE })
    const applied: AppliedEpoch[] = []
    const replica = new GuestReplica({ vmId: 'vm-wire', origin: 'p', memoryBytes: MEMORY, pageSize: PAGE, maxStagingBytes: 320 * 1024, onApplied: (epoch) => { applied.push(epoch) } })
    // (the bound holds a whole full epoch, 64 pages, with room to spare)
    for (const stripe of stripesOf(encoder.encode(checkpointOf(image, 1, [...Array(64).keys()], true)))) replica.accept(stripe.frame, stripe.bytes)
    await replica.whenIdle()
    const before = replica.memory.slice()
    // Epoch 2 never completes (its last stripe is held back); epochs 3.. pile up behind it.
    const changed = image.slice()
    changed.set(randomBytes(PAGE * 8), 0)
    const second = stripesOf(encoder.encode(checkpointOf(changed, 2, [0, 1, 2, 3, 4, 5, 6, 7])))
    for (const stripe of second.slice(0, -1)) replica.accept(stripe.frame, stripe.bytes)
    let refused: unknown
    for (let epoch = 3; epoch < 200 && refused === undefined; epoch++) {
      changed.set(randomBytes(PAGE), (epoch % 64) * PAGE)
      for (const stripe of stripesOf(encoder.encode(checkpointOf(changed, epoch, [epoch % 64])))) {
        try { replica.accept(stripe.frame, stripe.bytes) } catch (error) { refused = error; break }
      }
    }
    expect(refused).toBeInstanceOf(StagingOverflowError)
    expect(replica.stagedBytes).toBeLessThanOrEqual(320 * 1024)
    await replica.whenIdle()
    expect(replica.appliedEpoch).toBe(1)
    expect(Buffer.from(replica.memory).equals(before)).toBe(true)
    // The missing stripe arrives: everything staged is applied, in order.
    const last = second[second.length - 1]
    replica.accept(last.frame, last.bytes)
    await replica.whenIdle()
    expect(replica.appliedEpoch).toBeGreaterThan(2)
    expect(applied.map(epoch => epoch.epoch)).toEqual([...Array(replica.appliedEpoch).keys()].map(i => i + 1))
  })

  it('refuses stripes that describe another guest size', () => {
    const image = new Uint8Array(MEMORY * 2)
    const replica = new GuestReplica({ vmId: 'vm-wire', origin: 'p', memoryBytes: MEMORY, pageSize: PAGE })
    const [stripe] = stripesOf(new EpochEncoder().encode(checkpointOf(image, 1, [0], true)))
    expect(() => replica.accept(stripe.frame, stripe.bytes)).toThrow(ReplicaMismatchError)
  })
})
