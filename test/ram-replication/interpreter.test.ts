// The interpreted engine, on every machine: instruction semantics on small assembled programs,
// the page writer's memory and exact dirty log under each pattern, faults, pausing a guest that
// never reports, checkpoint → restore continuing the same guest, and (where KVM opens) images
// crossing between the two engines.
import { afterEach, describe, expect, it } from 'vitest'
import {
  EngineUnavailableError, GUEST_PAGE_SIZE, GuestLayout, GuestStoppedError, InterpretedGuest, InvalidGuestImageError, X86Fault, X86Interpreter,
  allocateGuestMemory, defaultEngine, defaultPageWriterParams, engineRestorer, guestRestorer, loadPageWriter, startGuest, verifyGuestMemory
} from '../../ram-replication/index.ts'
import { capabilities, titled } from '../harness/index.ts'
import { EAX, EBX, ECX, EDX, ESI, X86Assembler } from '../../ram-replication/guest/x86-assembler.ts'
import type { Checkpoint, WritePattern } from '../../ram-replication/index.ts'

const MiB = 1024 * 1024
const STATE_PAGE = GuestLayout.paramsAddress / GUEST_PAGE_SIZE
const DATA_START = GuestLayout.defaultDataStartPage

const guests: InterpretedGuest[] = []
async function start (...args: Parameters<typeof InterpretedGuest.start>): Promise<InterpretedGuest> {
  const guest = await InterpretedGuest.start(...args)
  guests.push(guest)
  return guest
}
afterEach(async () => {
  await Promise.all(guests.splice(0).map(async guest => { await guest.stop() }))
})

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Run `program` (ending in int3) in a 1 MiB guest laid out like the page writer's (same page tables). */
function runSnippet (program: (a: X86Assembler) => void): X86Interpreter {
  const memory = new Uint8Array(MiB)
  loadPageWriter(memory, defaultPageWriterParams(memory.byteLength))
  const a = new X86Assembler()
  program(a)
  a.int3()
  memory.fill(0, GuestLayout.codeAddress, GuestLayout.codeAddress + GUEST_PAGE_SIZE)
  memory.set(a.assemble(), GuestLayout.codeAddress)
  const interpreter = new X86Interpreter(memory, { cr3: GuestLayout.pml4Address })
  interpreter.cpu.rip = GuestLayout.codeAddress
  const result = interpreter.run(10_000)
  expect(result.breakpoint).toBe(true)
  return interpreter
}

function faultOf (program: (a: X86Assembler) => void): X86Fault {
  try {
    runSnippet(program)
  } catch (error) {
    expect(error).toBeInstanceOf(X86Fault)
    return error as X86Fault
  }
  throw new Error('the snippet did not fault')
}

function flags (interpreter: X86Interpreter): { cf: number, zf: number, sf: number, of: number } {
  const { cf, zf, sf, of } = interpreter.cpu
  return { cf, zf, sf, of }
}

/** The pages the guest's own generator picks, recomputed here independently of the guest code. */
function expectedPages (pattern: WritePattern, seed: number, writes: number, dataPages: number, hotPages: number, hotShare: number): Set<number> {
  const pages = new Set<number>()
  let x = seed >>> 0
  const threshold = pattern === 'hot' ? Math.round(hotShare * 256) : 0
  for (let i = 0; i < writes; i++) {
    if (pattern === 'sequential') {
      pages.add(DATA_START + (i % dataPages))
      continue
    }
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    const range = (x & 0xff) < threshold ? hotPages : dataPages
    pages.add(DATA_START + ((x >>> 8) % range))
  }
  return pages
}

function applyCheckpoint (image: Uint8Array, checkpoint: Checkpoint): void {
  for (const page of checkpoint.pages) image.set(page.data, page.index * checkpoint.pageSize)
}

describe('x86 interpreter: instruction semantics', () => {
  it('add sets carry, zero, sign and overflow; adc carries into the high word', () => {
    let cpu = runSnippet(a => a.movImm(EAX, 0xffffffff).addImm(EAX, 1).movImm(EDX, 5).adcImm(EDX, 0))
    expect(cpu.cpu.lo[EAX]).toBe(0)
    expect(cpu.cpu.lo[EDX]).toBe(6)
    expect(flags(cpu)).toEqual({ cf: 0, zf: 0, sf: 0, of: 0 })
    cpu = runSnippet(a => a.movImm(EAX, 0xffffffff).addImm(EAX, 1))
    expect(flags(cpu)).toEqual({ cf: 1, zf: 1, sf: 0, of: 0 })
    cpu = runSnippet(a => a.movImm(EAX, 0x7fffffff).movImm(ECX, 1).add(EAX, ECX))
    expect(cpu.cpu.lo[EAX]).toBe(0x80000000)
    expect(flags(cpu)).toEqual({ cf: 0, zf: 0, sf: 1, of: 1 })
  })

  it('sub and cmp set borrow and signed overflow; cmp keeps its operand', () => {
    let cpu = runSnippet(a => a.movImm(EAX, 1).movImm(ECX, 2).cmp(EAX, ECX))
    expect(cpu.cpu.lo[EAX]).toBe(1)
    expect(flags(cpu)).toEqual({ cf: 1, zf: 0, sf: 1, of: 0 })
    cpu = runSnippet(a => a.movImm(EAX, 0x80000000).movImm(ECX, 1).sub(EAX, ECX))
    expect(cpu.cpu.lo[EAX]).toBe(0x7fffffff)
    expect(flags(cpu)).toEqual({ cf: 0, zf: 0, sf: 0, of: 1 })
    cpu = runSnippet(a => a.movImm(EAX, 7).cmpImm(EAX, 7))
    expect(flags(cpu)).toEqual({ cf: 0, zf: 1, sf: 0, of: 0 })
  })

  it('and/xor clear carry and overflow; imul matches a 32-bit multiply and flags signed overflow', () => {
    let cpu = runSnippet(a => a.movImm(EAX, 0xffffffff).addImm(EAX, 1).movImm(EDX, 0xf0f0).andImm(EDX, 0xff).xorImm(EDX, 0xf0))
    expect(cpu.cpu.lo[EDX]).toBe(0)
    expect(flags(cpu)).toEqual({ cf: 0, zf: 1, sf: 0, of: 0 })
    cpu = runSnippet(a => a.movImm(EAX, 123456789).imulImm(ESI, EAX, 0x9e3779b1))
    expect(cpu.cpu.lo[ESI]).toBe(Math.imul(123456789, 0x9e3779b1) >>> 0)
    expect(cpu.cpu.cf).toBe(1)
    expect(cpu.cpu.of).toBe(1)
    cpu = runSnippet(a => a.movImm(EAX, 1000).imulImm(ESI, EAX, -3 >>> 0))
    expect(cpu.cpu.lo[ESI]).toBe(-3000 >>> 0)
    expect(cpu.cpu.cf).toBe(0)
  })

  it('shl/shr shift out into carry; inc/dec keep carry', () => {
    let cpu = runSnippet(a => a.movImm(EAX, 0x80000001).shl(EAX, 1))
    expect(cpu.cpu.lo[EAX]).toBe(2)
    expect(cpu.cpu.cf).toBe(1)
    cpu = runSnippet(a => a.movImm(EAX, 0x00000180).shr(EAX, 8))
    expect(cpu.cpu.lo[EAX]).toBe(1)
    expect(cpu.cpu.cf).toBe(1)
    cpu = runSnippet(a => a.movImm(EAX, 0xffffffff).addImm(EAX, 1).movImm(ECX, 1).dec(ECX))
    expect(flags(cpu)).toEqual({ cf: 1, zf: 1, sf: 0, of: 0 })
    cpu = runSnippet(a => a.movImm(ECX, 0x7fffffff).inc(ECX))
    expect(flags(cpu)).toEqual({ cf: 0, zf: 0, sf: 1, of: 1 })
  })

  it('div divides edx:eax, and faults (#DE) on zero and on a quotient that does not fit', () => {
    let cpu = runSnippet(a => a.movImm(EDX, 1).movImm(EAX, 5).movImm(ECX, 2).div(ECX))
    expect(cpu.cpu.lo[EAX]).toBe(0x80000002)
    expect(cpu.cpu.lo[EDX]).toBe(1)
    cpu = runSnippet(a => a.movImm(EDX, 0).movImm(EAX, 1000).movImm(ECX, 7).div(ECX))
    expect([cpu.cpu.lo[EAX], cpu.cpu.lo[EDX]]).toEqual([142, 6])
    const zero = faultOf(a => a.xor(EDX, EDX).movImm(EAX, 1).xor(ECX, ECX).div(ECX))
    expect(zero.kind).toBe('divide-error')
    expect(zero.rip).toBe(GuestLayout.codeAddress + 2 + 5 + 2)
    expect(faultOf(a => a.movImm(EDX, 3).movImm(ECX, 3).div(ECX)).kind).toBe('divide-error')
  })

  it('32-bit results clear the high half of the register', () => {
    const memory = new Uint8Array(MiB)
    loadPageWriter(memory, defaultPageWriterParams(memory.byteLength))
    memory.set(new X86Assembler().mov(EBX, EBX).addImm(ECX, 1).int3().assemble(), GuestLayout.codeAddress)
    const interpreter = new X86Interpreter(memory, { cr3: GuestLayout.pml4Address })
    interpreter.cpu.rip = GuestLayout.codeAddress
    interpreter.cpu.hi[EBX] = 7
    interpreter.cpu.hi[ECX] = 9
    interpreter.run(10)
    expect([interpreter.cpu.hi[EBX], interpreter.cpu.hi[ECX], interpreter.cpu.lo[ECX]]).toEqual([0, 0, 1])
  })

  it('jcc takes each condition the assembler offers exactly when the flags say so', () => {
    // [a, b, condition, taken] for cmp a, b
    const cases: Array<[number, number, 'e' | 'ne' | 'b' | 'ae' | 'be' | 'a', boolean]> = [
      [1, 1, 'e', true], [1, 2, 'e', false], [1, 2, 'ne', true], [1, 2, 'b', true], [2, 1, 'b', false],
      [2, 1, 'ae', true], [1, 1, 'ae', true], [1, 2, 'ae', false], [1, 1, 'be', true], [2, 1, 'be', false],
      [2, 1, 'a', true], [1, 1, 'a', false], [0xffffffff, 1, 'a', true]
    ]
    for (const [x, y, condition, taken] of cases) {
      const cpu = runSnippet(a => a.movImm(EAX, x).movImm(ECX, y).movImm(EDX, 0).cmp(EAX, ECX).jcc(condition, 'yes').jmp('end').label('yes').movImm(EDX, 1).label('end'))
      expect([x, y, condition, cpu.cpu.lo[EDX] === 1]).toEqual([x, y, condition, taken])
    }
  })

  it('an unknown opcode faults naming the byte and RIP; a store to the code page or outside memory is a page fault', () => {
    const memory = new Uint8Array(MiB)
    loadPageWriter(memory, defaultPageWriterParams(memory.byteLength))
    memory.set([0xb8, 1, 0, 0, 0, 0x0f, 0x05], GuestLayout.codeAddress) // mov eax, 1; syscall
    const interpreter = new X86Interpreter(memory, { cr3: GuestLayout.pml4Address })
    interpreter.cpu.rip = GuestLayout.codeAddress
    expect(() => interpreter.run(10)).toThrow(/invalid-opcode at RIP 0x2005: two-byte opcode 0x0f 0x5 \(bytes 0f 05\)/)
    expect(interpreter.cpu.rip).toBe(0x2005)
    const code = faultOf(a => a.movImm(EAX, 1).store(GuestLayout.codeAddress, EAX))
    expect(code.kind).toBe('page-fault')
    expect(code.message).toMatch(/write to 0x2000: mapped read-only/)
    const tables = faultOf(a => a.movImm(EAX, 1).store(GuestLayout.pml4Address, EAX))
    expect(tables.message).toMatch(/mapped read-only/)
    const outside = faultOf(a => a.movImm(EBX, 4 * MiB).load(EAX, 0, EBX))
    expect(outside.kind).toBe('page-fault')
    expect(outside.address).toBe(4 * MiB)
    expect(faultOf(a => a.load(EAX, 0x10)).message).toMatch(/not mapped/) // page 0 is unmapped
  })
})

describe('interpreted guest: the page writer', () => {
  for (const pattern of ['sequential', 'random', 'hot'] as const) {
    it(`${pattern}: N writes leave memory the checksum accepts, a counter of N, and a dirty log of exactly the pages written`, async () => {
      const writes = 3000
      const seed = 0x1234567
      const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern, seed, maxWrites: writes, reportEvery: 32, hotPages: 64, hotShare: 0.75 } })
      await guest.waitUntilHalted()
      expect(guest.state).toBe('halted')
      expect(guest.guestCounter()).toBe(writes)
      const check = verifyGuestMemory(guest.memory())
      expect(check).toMatchObject({ ok: true, counter: writes, badPages: [] })
      const dataPages = 16 * MiB / GUEST_PAGE_SIZE - DATA_START
      const expected = [STATE_PAGE, ...expectedPages(pattern, seed, writes, dataPages, 64, 0.75)].sort((x, y) => x - y)
      const checkpoint = await guest.checkpoint(1)
      expect(checkpoint.pages.map(page => page.index)).toEqual(expected)
      expect(checkpoint.guestCounter).toBe(writes)
      // Nothing written since: the next epoch is empty.
      expect((await guest.checkpoint(2)).pages).toEqual([])
    })
  }

  it('a guest that writes to its code page fails with a clear page fault', async () => {
    const guest = await start({ memoryBytes: 1 * MiB, paused: true, workload: { maxWrites: 100 } })
    const code = new X86Assembler().movImm(EAX, 0xdead).store(GuestLayout.codeAddress + 16, EAX).int3().assemble()
    guest.memory().set(code, GuestLayout.codeAddress)
    guest.resume()
    await expect(guest.waitForCounter(1)).rejects.toThrow(/page-fault at RIP 0x2005: write to 0x2010: mapped read-only/)
    expect(guest.state).toBe('failed')
    expect(guest.error?.name).toBe('GuestFaultError')
  })

  it('pauses promptly at any instruction of a guest that never reports, and resumes', async () => {
    const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'random', reportEvery: 1 << 20 } })
    await sleep(60)
    const before = performance.now()
    await guest.pause()
    const pauseMs = performance.now() - before
    expect(guest.state).toBe('paused')
    expect(guest.stats().progressExits).toBe(0)
    const counter = guest.guestCounter()
    expect(counter).toBeGreaterThan(0)
    // no waiting for a report (the next is a million writes away, seconds): the bound leaves
    // room for a machine busy with other tests, the figure itself is bench:vmm's
    expect(pauseMs).toBeLessThan(1000)
    await sleep(30)
    expect(guest.guestCounter()).toBe(counter)
    guest.resume()
    await guest.waitForCounter(counter + 100)
    console.info('interpreted guest paused in %s ms (no reports); %j', pauseMs.toFixed(2), guest.stats())
  })

  it('a checkpoint restored into a new interpreted guest continues with the same counter and memory', async () => {
    const workload = { pattern: 'random' as const, maxWrites: 4000, reportEvery: 16 }
    const original = await start({ memoryBytes: 16 * MiB, workload })
    await original.waitForCounter(1000)
    const full = await original.fullCheckpoint(1)
    const image = new Uint8Array(full.memoryBytes)
    applyCheckpoint(image, full)
    // A few epochs on top, as a backup receives them.
    let last = full
    for (let epoch = 2; epoch <= 4; epoch++) {
      await sleep(5)
      last = await original.checkpoint(epoch)
      applyCheckpoint(image, last)
    }
    const copy = await InterpretedGuest.restore({ vmId: last.vmId, memory: image, memoryBytes: last.memoryBytes, pageSize: last.pageSize, vcpu: last.vcpu }, { paused: true })
    guests.push(copy)
    expect(copy.engine).toBe('interpreted')
    expect(copy.guestCounter()).toBe(last.guestCounter)
    expect(Buffer.from(copy.memory()).equals(Buffer.from(image))).toBe(true)
    expect(verifyGuestMemory(copy.memory()).ok).toBe(true)
    copy.resume()
    await Promise.all([copy.waitUntilHalted(), original.waitUntilHalted()])
    expect(copy.guestCounter()).toBe(4000)
    expect(verifyGuestMemory(copy.memory()).ok).toBe(true)
    // The same program from the same state: the copy ends exactly where the original does.
    expect(Buffer.from(copy.memory()).equals(Buffer.from(original.memory()))).toBe(true)
  })

  it('honours the dirty rate and the throttle; a stopped guest refuses checkpoints', async () => {
    const guest = await start({ memoryBytes: 16 * MiB, workload: { pattern: 'random', dirtyRate: 2000, reportEvery: 16 } })
    await sleep(500)
    const paced = guest.guestCounter()
    expect(paced).toBeGreaterThan(600)
    expect(paced).toBeLessThan(1400)
    guest.setThrottle(1)
    await sleep(20)
    expect(guest.state).toBe('throttled')
    const held = guest.guestCounter()
    await sleep(100)
    expect(guest.guestCounter()).toBe(held)
    guest.setThrottle(0)
    await guest.waitForCounter(held + 32)
    await guest.stop()
    await expect(guest.checkpoint(1)).rejects.toBeInstanceOf(GuestStoppedError)
  })

  it('runs the page writer and prints its instruction rate', () => {
    const figures: string[] = []
    for (const bytesPerWrite of [64, 4096]) {
      const memory = new Uint8Array(32 * MiB)
      loadPageWriter(memory, defaultPageWriterParams(memory.byteLength, { pattern: 'random', bytesPerWrite, reportEvery: 64 }))
      const interpreter = new X86Interpreter(memory, { cr3: GuestLayout.pml4Address })
      interpreter.cpu.rip = GuestLayout.codeAddress
      const startedAt = performance.now()
      while (performance.now() - startedAt < 300) interpreter.run(100_000)
      const seconds = (performance.now() - startedAt) / 1000
      const writes = new DataView(memory.buffer).getUint32(GuestLayout.paramsAddress + 0x40, true)
      figures.push(`${bytesPerWrite} B/write: ${(interpreter.instructions / seconds / 1e6).toFixed(1)} M instructions/s, ${Math.round(writes / seconds)} writes/s`)
      // the rate is a benchmark figure (bench:ram), not a test bound: here, that it ran and wrote
      expect(interpreter.instructions).toBeGreaterThan(100_000)
      expect(writes).toBeGreaterThan(0)
    }
    console.info('interpreter speed: %s', figures.join('; '))
  })
})

describe('engines: choosing one, and images crossing between them', () => {
  const kvm = capabilities().kvm

  it('a backup resumes an image on the engine it names, and refuses an unknown or unusable one with the reason', async () => {
    const original = await start({ memoryBytes: 4 * MiB, workload: { maxWrites: 300, reportEvery: 16 } })
    await original.waitUntilHalted()
    const full = await original.fullCheckpoint(1)
    const image = new Uint8Array(full.memoryBytes)
    applyCheckpoint(image, full)
    const base = { vmId: full.vmId, memory: image, memoryBytes: full.memoryBytes, pageSize: full.pageSize, vcpu: full.vcpu }
    expect(full.engine).toBe('interpreted')
    const restore = engineRestorer()
    const resumed = await restore({ ...base, engine: full.engine })
    guests.push(resumed as InterpretedGuest)
    expect(resumed.engine).toBe('interpreted')
    expect(resumed.guestCounter()).toBe(300)
    await expect(restore({ ...base, engine: 'qemu' })).rejects.toBeInstanceOf(InvalidGuestImageError)
    if (kvm.missing !== undefined) {
      await expect(restore({ ...base, engine: 'kvm' })).rejects.toBeInstanceOf(EngineUnavailableError)
      expect(defaultEngine()).toBe('interpreted')
    } else {
      expect(defaultEngine()).toBe('kvm')
    }
  })

  it.skipIf(kvm.missing !== undefined)(titled('a checkpoint taken on either engine resumes on the other and the guest ends the same', kvm), async () => {
    const workload = { pattern: 'random' as const, maxWrites: 3000, reportEvery: 16, seed: 0x5eed }
    for (const [from, to] of [['interpreted', 'kvm'], ['kvm', 'interpreted']] as const) {
      const source = await startGuest(from, { memoryBytes: 16 * MiB, workload })
      await source.waitForCounter(1000)
      await source.pause()
      const full = await source.fullCheckpoint(1)
      const image = allocateGuestMemory(full.memoryBytes)
      applyCheckpoint(image, full)
      const target = await guestRestorer(to)({ vmId: `${full.vmId}-copy`, memory: image, memoryBytes: full.memoryBytes, pageSize: full.pageSize, vcpu: full.vcpu })
      expect(target.engine).toBe(to)
      // it runs from the moment it is restored
      expect(target.guestCounter()).toBeGreaterThanOrEqual(full.guestCounter)
      source.resume()
      await Promise.all([source.waitUntilHalted(), target.waitUntilHalted()])
      expect(verifyGuestMemory(target.memory()).ok).toBe(true)
      // The same program from the same state on two engines: the same memory at the end.
      expect(Buffer.from(target.memory()).equals(Buffer.from(source.memory()))).toBe(true)
      await source.stop()
      await target.stop()
    }
  })
})
