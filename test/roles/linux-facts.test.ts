// The Linux facts the probe reads from sysfs and procfs, against made-up machines: a laptop
// on battery and on mains, a desktop with a wireless mouse, a machine with no battery.
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { batteryFacts, memoryFacts, osFacts, loadPercent, openLoadWindow, pageSizeFromAuxv } from '../../roles/probe/linux-facts.ts'

function supplies (spec: Record<string, Record<string, string>>): string {
  const dir = mkdtempSync(join(tmpdir(), 'myc-power-'))
  for (const [name, files] of Object.entries(spec)) {
    mkdirSync(join(dir, name))
    for (const [file, value] of Object.entries(files)) writeFileSync(join(dir, name, file), value + '\n')
  }
  dirs.push(dir)
  return dir
}
const dirs: string[] = []
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })

describe('power supplies from /sys/class/power_supply', () => {
  it('a laptop unplugged runs on its battery', () => {
    const dir = supplies({ BAT0: { type: 'Battery', status: 'Discharging', capacity: '63', present: '1' }, AC: { type: 'Mains', online: '0' } })
    expect(batteryFacts(dir)).toEqual({ present: true, charging: false, percent: 63, onBattery: true })
  })

  it('a laptop on mains charges and is not on battery', () => {
    const dir = supplies({ BAT0: { type: 'Battery', status: 'Charging', capacity: '40' }, AC: { type: 'Mains', online: '1' } })
    expect(batteryFacts(dir)).toEqual({ present: true, charging: true, percent: 40, onBattery: false })
  })

  it("a desktop's wireless mouse battery is not the machine's, and an empty slot is no battery", () => {
    const dir = supplies({ hidpp_battery_0: { type: 'Battery', scope: 'Device', status: 'Discharging', capacity: '10' }, BAT1: { type: 'Battery', present: '0' } })
    expect(batteryFacts(dir)).toEqual({ present: false, charging: false, percent: null, onBattery: false })
  })

  it('a machine without the directory has no battery', () => {
    expect(batteryFacts('/nonexistent/power_supply')).toEqual({ present: false, charging: false, percent: null, onBattery: false })
  })
})

describe('procfs and os-release', () => {
  it('reads MemTotal and MemAvailable, and says nothing rather than guess from a damaged file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'myc-proc-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'meminfo'), 'MemTotal:        3884128 kB\nMemFree:          200000 kB\nMemAvailable:    2500000 kB\n')
    expect(memoryFacts(join(dir, 'meminfo'))).toEqual({ totalBytes: 3884128 * 1024, availableBytes: 2500000 * 1024 })
    writeFileSync(join(dir, 'broken'), 'garbage\n')
    expect(memoryFacts(join(dir, 'broken'))).toBeUndefined()
  })

  it('names the distribution of a Raspberry Pi OS image', () => {
    const dir = mkdtempSync(join(tmpdir(), 'myc-os-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'os-release'), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n')
    expect(osFacts('linux', 'arm64', join(dir, 'os-release'))).toMatchObject({ platform: 'linux', distro: 'Debian GNU/Linux 12 (bookworm)', release: '12', arch: 'arm64' })
  })

  it('samples the load now, between 0 and 100, and stops early when aborted', async () => {
    const load = await loadPercent(100)
    expect(load).toBeGreaterThanOrEqual(0)
    expect(load).toBeLessThanOrEqual(100)
    const abort = new AbortController()
    abort.abort()
    const started = Date.now()
    await loadPercent(10_000, abort.signal)
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('reads a load window opened earlier without waiting again, leaving the node\'s own CPU out', async () => {
    const window = openLoadWindow()
    expect(window).toBeDefined()
    // this process keeps one core busy while the window is open: that is not the machine's load
    const until = performance.now() + 150
    while (performance.now() < until) Math.sqrt(Math.random())
    const started = performance.now()
    const load = await loadPercent(100, undefined, window)
    expect(performance.now() - started).toBeLessThan(50)
    expect(load).toBeGreaterThanOrEqual(0)
    expect(load).toBeLessThanOrEqual(100)
  })
})

describe('the host page size', () => {
  const auxv = (pairs: Array<[number, number]>): Uint8Array => {
    const bytes = new Uint8Array((pairs.length + 1) * 16)
    const view = new DataView(bytes.buffer)
    pairs.forEach(([key, value], i) => { view.setBigUint64(i * 16, BigInt(key), true); view.setBigUint64(i * 16 + 8, BigInt(value), true) })
    return bytes
  }

  it('is read from the auxiliary vector (AT_PAGESZ), 16 KiB on a Pi 5 kernel, and null when absent or odd', () => {
    expect(pageSizeFromAuxv(auxv([[33, 0x7fff0000], [6, 16384], [17, 100]]))).toBe(16384)
    expect(pageSizeFromAuxv(auxv([[33, 1]]))).toBeNull()
    expect(pageSizeFromAuxv(auxv([[6, 3000]]))).toBeNull()
    expect(pageSizeFromAuxv(undefined)).toBeNull()
    expect(pageSizeFromAuxv(new Uint8Array(7))).toBeNull()
  })

  it('is this machine\'s own in the probe', () => {
    const size = osFacts('linux', process.arch).pageSizeBytes
    expect(size).not.toBeNull()
    expect(Math.log2(size!) % 1).toBe(0)
    expect(size!).toBeGreaterThanOrEqual(4096)
  })
})
