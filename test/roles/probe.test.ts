import { describe, it, expect, afterEach } from 'vitest'
import { execFileSync } from 'node:child_process'
import { readFileSync, openSync, closeSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { assessRole, probeHardware, measureHardware, hardwareProfileFromEnv, loadHardwareProfile, HardwareProfileError, HARDWARE_PROFILE_ENV } from '../../roles/index.ts'

function meminfo (field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))
  if (m === null) throw new Error(`no ${field} in /proc/meminfo`)
  return Number(m[1]) * 1024
}

function kvmOpens (): boolean {
  try { closeSync(openSync('/dev/kvm', 'r+')); return true } catch { return false }
}

describe('hardware probe on this machine', () => {
  it('agrees with /proc/cpuinfo, /proc/meminfo, nproc and df', async () => {
    const dir = process.cwd()
    const facts = await probeHardware({ dataDir: dir })

    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
    const modelName = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim()
    if (modelName !== undefined) expect(facts.cpu.model).toBe(modelName)
    expect(facts.cpu.cores).toBe(Number(execFileSync('nproc', { encoding: 'utf8' }).trim()))
    const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)
    if (mhz !== null) expect(Math.abs((facts.cpu.speedMHz ?? 0) - Number(mhz[1]))).toBeLessThan(Number(mhz[1]) * 0.5)
    expect(facts.cpu.loadPercent).toBeGreaterThanOrEqual(0)
    expect(facts.cpu.loadPercent).toBeLessThanOrEqual(100)

    expect(facts.memory.totalBytes).toBe(meminfo('MemTotal'))
    // available memory moves while other tests run: within 5 % of total
    expect(Math.abs(facts.memory.availableBytes - meminfo('MemAvailable'))).toBeLessThan(meminfo('MemTotal') * 0.05)

    const [size, avail] = execFileSync('df', ['-B1', '--output=size,avail', dir], { encoding: 'utf8' }).trim().split('\n')[1].trim().split(/\s+/).map(Number)
    expect(facts.disk.sizeBytes).toBe(size)
    expect(Math.abs((facts.disk.freeBytes ?? 0) - avail)).toBeLessThan(256 * 1024 ** 2)

    expect(facts.os.arch).toBe(process.arch)
    expect(facts.os.platform).toBe('linux')
    expect(facts.virtualization.kvm).toBe(kvmOpens())
    expect(facts.uptimeSeconds).toBeGreaterThan(0)
    expect(facts.interfaces.some(i => i.name === 'lo' && i.internal)).toBe(true)
    expect(facts.raspberryPi).toBe(null)
    expect(facts.unknown).toEqual([])
  })

  it('reports whether /dev/kvm opens read-write: a machine without KVM is a fact, not an error', async () => {
    const facts = await probeHardware({ dataDir: tmpdir() })
    expect(facts.virtualization.kvm).toBe(kvmOpens())
    const report = await assessRole({ dataDir: tmpdir() })
    expect(report.hardware.kvm).toBe(kvmOpens())
    if (kvmOpens()) expect(report.reasons).toContain('KVM available → can host VM backups on both engines')
    else expect(report.reasons.join('\n')).toMatch(/no usable \/dev\/kvm/)
  })

  it('answers within its deadline and names what it could not measure', async () => {
    const started = Date.now()
    const facts = await probeHardware({ dataDir: tmpdir(), timeoutMs: 1 })
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(facts.unknown.length).toBeGreaterThan(0)
    // figures from the kernel that need no query are still there
    expect(facts.memory.totalBytes).toBe(meminfo('MemTotal'))
    expect(facts.cpu.cores).toBeGreaterThan(0)
  })
})

describe('hardware profile injection', () => {
  let dir: string | undefined
  afterEach(() => { if (dir !== undefined) rmSync(dir, { recursive: true, force: true }) })

  it('replaces measured facts with a built-in profile named in the environment', async () => {
    const profile = hardwareProfileFromEnv({ [HARDWARE_PROFILE_ENV]: 'pi-zero-2w' })
    const facts = await measureHardware({ dataDir: tmpdir(), profile })
    expect(facts.profile).toBe('pi-zero-2w')
    expect(facts.memory.totalBytes).toBe(512 * 1024 ** 2)
    expect(facts.raspberryPi).toMatch(/Zero 2 W/)
    expect(hardwareProfileFromEnv({})).toBeUndefined()
  })

  it('overrides single facts of the measured machine from a JSON file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mycelium-profile-'))
    const file = join(dir, 'profile.json')
    writeFileSync(file, JSON.stringify({ name: 'on-battery', hardware: { battery: { present: true, onBattery: true, percent: 40 } }, network: { reachable: false } }))
    const profile = loadHardwareProfile(file)
    const facts = await measureHardware({ dataDir: tmpdir(), profile })
    expect(facts.profile).toBe('on-battery')
    expect(facts.battery).toEqual({ present: true, charging: false, percent: 40, onBattery: true })
    expect(facts.memory.totalBytes).toBe(meminfo('MemTotal'))
  })

  it('takes inline JSON on top of a built-in profile', async () => {
    const profile = loadHardwareProfile('{"base":"server-kvm","hardware":{"cpu":{"cores":4}}}')
    const facts = await measureHardware({ dataDir: tmpdir(), profile })
    expect(facts.cpu.cores).toBe(4)
    expect(facts.cpu.model).toBe('AMD EPYC 7443P')
  })

  it('refuses profiles with unknown facts, wrong types or an unknown base', () => {
    expect(() => loadHardwareProfile('{"hardware":{"cpu":{"cores":"many"}}}')).toThrow(HardwareProfileError)
    expect(() => loadHardwareProfile('{"hardware":{"gpu":{}}}')).toThrow(/hardware.gpu is not a known fact/)
    expect(() => loadHardwareProfile('{"base":"mainframe"}')).toThrow(HardwareProfileError)
    expect(() => loadHardwareProfile('{"hardware":{"interfaces":[{"name":"x","type":"laser","speedMbps":1,"up":true,"internal":false}]}}')).toThrow(/type must be one of/)
    expect(() => loadHardwareProfile('/nonexistent/profile.json')).toThrow(/neither a built-in profile/)
    expect(() => loadHardwareProfile('{not json')).toThrow(/not valid JSON/)
  })
})
