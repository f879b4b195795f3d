// VMM figures for a 256 MiB guest: for several guest dirty rates, how many checkpoint epochs
// per second the VMM sustains back to back, how many dirty pages per second it collects, and
// how long the guest is paused per checkpoint (median, p99), and how long a checkpoint waits
// for the vCPU to leave the guest (park: on KVM the kick, on the interpreter the turn under
// way). The last runs use a guest that never reports (reportEvery 0): it stops only because it
// is kicked. Also the cost of a full checkpoint. Run: node test/bench/vmm.ts  (BENCH_SECONDS=3 per rate by default; on KVM, or
// BENCH_ENGINE=interpreted for the interpreted engine, which needs no /dev/kvm)
import { engineUnavailable, parseGuestEngine, probeKvm, startGuest, verifyGuestMemory } from '../../ram-replication/index.ts'

const MiB = 1024 * 1024
const seconds = Number(process.env.BENCH_SECONDS ?? 3)
/** Guest write rates to try (pages/s); 0 = unpaced. */
const rates = (process.env.BENCH_RATES ?? '5000,20000,100000,0').split(',').map(Number)
/** Epoch intervals to try with an unpaced guest (ms); 0 = back to back. */
const intervals = (process.env.BENCH_INTERVALS ?? '0,10,25').split(',').map(Number)

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

const engine = parseGuestEngine(process.env.BENCH_ENGINE ?? 'kvm')
const missing = engineUnavailable(engine)
if (missing !== undefined) {
  console.error(`bench:vmm: the ${engine} engine cannot run here: ${missing} (BENCH_ENGINE=interpreted runs without KVM)`)
  process.exit(1)
}
if (engine === 'kvm') {
  const report = probeKvm()
  console.log(`KVM API ${report.apiVersion}, manual dirty-log protect flags ${report.manualDirtyLogProtect}, dirty ring ${report.dirtyLogRingBytes} bytes`)
} else {
  console.log('interpreted engine')
}
console.log(`256 MiB guest, random pattern, 64 bytes stamped per write, ${seconds} s per run\n`)

const rows: Array<Record<string, string | number>> = []
const runs = [
  ...rates.map(rate => ({ rate, interval: 0, reportEvery: 64 })),
  ...intervals.filter(interval => interval > 0).map(interval => ({ rate: 0, interval, reportEvery: 64 })),
  // a guest that never reports: only the kick gets it out
  ...intervals.map(interval => ({ rate: 0, interval, reportEvery: 0 }))
]
for (const { rate, interval, reportEvery } of runs) {
  const guest = await startGuest(engine, { memoryBytes: 256 * MiB, workload: { pattern: 'random', dirtyRate: rate, reportEvery } })
  try {
    await guest.fullCheckpoint(0)
    const pauses: number[] = []
    const parks: number[] = []
    let pages = 0
    let epoch = 0
    const counterAtStart = guest.guestCounter()
    const startedAt = performance.now()
    const deadline = startedAt + seconds * 1000
    while (performance.now() < deadline) {
      const checkpoint = await guest.checkpoint(++epoch)
      pages += checkpoint.pages.length
      const timing = guest.stats().lastCheckpoint!
      pauses.push(timing.pauseMs)
      parks.push(timing.parkMs)
      // Let the guest run between epochs, as it does while the transport sends.
      if (interval > 0) await new Promise(resolve => setTimeout(resolve, interval))
      else await new Promise(resolve => setImmediate(resolve))
    }
    const elapsed = (performance.now() - startedAt) / 1000
    const writes = guest.guestCounter() - counterAtStart
    pauses.sort((a, b) => a - b)
    parks.sort((a, b) => a - b)
    await guest.pause()
    const check = verifyGuestMemory(guest.memory())
    rows.push({
      reports: reportEvery === 0 ? 'never' : `every ${reportEvery}`,
      'target pages/s': rate === 0 ? 'unpaced' : rate,
      'epoch every': interval === 0 ? 'back to back' : `${interval} ms`,
      'guest writes/s': Math.round(writes / elapsed),
      'epochs/s': Math.round(epoch / elapsed),
      'dirty pages/s': Math.round(pages / elapsed),
      'pages/epoch': Math.round(pages / epoch),
      'pause median ms': percentile(pauses, 0.5).toFixed(3),
      'pause p99 ms': percentile(pauses, 0.99).toFixed(3),
      'park median ms': percentile(parks, 0.5).toFixed(3),
      'park p99 ms': percentile(parks, 0.99).toFixed(3),
      'memory verifies': check.ok ? 'yes' : 'NO'
    })
  } finally {
    await guest.stop()
  }
}
console.table(rows)

const guest = await startGuest(engine, { memoryBytes: 256 * MiB, workload: { pattern: 'random', reportEvery: 64 } })
try {
  await guest.waitForCounter(100000)
  const full: number[] = []
  for (let i = 0; i < 3; i++) {
    await guest.fullCheckpoint(i + 1)
    full.push(guest.stats().lastCheckpoint!.pauseMs)
  }
  full.sort((a, b) => a - b)
  console.log(`\nfull checkpoint of 256 MiB (65536 pages): pause median ${percentile(full, 0.5).toFixed(1)} ms`)
} finally {
  await guest.stop()
}
