// The machine's facts read straight from Linux's procfs and sysfs. systeminformation answers
// the same questions by spawning shells (dmidecode, iw, lsb_release, …), synchronously for
// several of them: measured here it blocked a starting daemon's event loop for 1.7 s and spent
// more CPU than the rest of the start-up. Reading files costs a few milliseconds and works the
// same on a Raspberry Pi, a laptop, a server, a VM and a container.
import { readFileSync, readdirSync, existsSync, realpathSync } from 'node:fs'
import { networkInterfaces, release } from 'node:os'
import type { HardwareFacts, LinkType, NetworkInterfaceFacts } from './hardware-facts.ts'

function read (path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

function readTrimmed (path: string): string | undefined {
  const text = read(path)?.replace(/\0/g, '').trim()
  return text === '' ? undefined : text
}

/** MemTotal and MemAvailable (what a new workload can get, page cache included). */
export function memoryFacts (meminfo = '/proc/meminfo'): HardwareFacts['memory'] | undefined {
  const text = read(meminfo)
  if (text === undefined) return undefined
  const field = (name: string): number | undefined => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)
    return m === null ? undefined : Number(m[1]) * 1024
  }
  const totalBytes = field('MemTotal')
  const availableBytes = field('MemAvailable') ?? field('MemFree')
  return totalBytes === undefined || availableBytes === undefined ? undefined : { totalBytes, availableBytes }
}

interface CpuTimes { busy: number, total: number }

function cpuTimes (stat = '/proc/stat'): CpuTimes | undefined {
  const line = read(stat)?.split('\n').find(l => l.startsWith('cpu '))
  if (line === undefined) return undefined
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  if (v.length < 4 || v.some(x => !Number.isFinite(x))) return undefined
  // user nice system idle iowait irq softirq steal (guest time is already counted in user)
  const idle = v[3] + (v[4] ?? 0)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

/** This process's user + system time, in the clock ticks /proc/stat counts in. */
function ownTicks (stat = '/proc/self/stat'): number | undefined {
  const fields = read(stat)?.split(') ')[1]?.split(' ')
  if (fields === undefined) return undefined
  const ticks = Number(fields[11]) + Number(fields[12])
  return Number.isFinite(ticks) ? ticks : undefined
}

/**
 * A load sample begun now and read later (loadPercent): a daemon opens one when it assembles
 * its features, so the first role decision, a few hundred milliseconds on, need not wait for a
 * sample of its own.
 */
export interface LoadWindow { openedAt: number, machine: CpuTimes, own: number }

export function openLoadWindow (): LoadWindow | undefined {
  const machine = cpuTimes()
  const own = ownTicks()
  return machine === undefined || own === undefined ? undefined : { openedAt: performance.now(), machine, own }
}

/**
 * Busy share of all cores, 0–100, over a short sample (the load now, not since boot): from
 * `window` (default: opened now) until at least `sampleMs` after it opened. The node's own CPU
 * time is left out: it is the load of everything else on the machine, so a node loading its
 * code while the window is open, or busy serving its role, does not count against itself.
 */
export async function loadPercent (sampleMs: number, signal?: AbortSignal, window = openLoadWindow()): Promise<number | undefined> {
  if (window === undefined) return undefined
  const waitMs = window.openedAt + sampleMs - performance.now()
  if (waitMs > 0) {
    await new Promise<void>((resolve) => {
      if (signal?.aborted === true) { resolve(); return }
      const timer = setTimeout(resolve, waitMs)
      signal?.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
    })
  }
  const machine = cpuTimes()
  const own = ownTicks()
  if (machine === undefined || own === undefined || machine.total <= window.machine.total) return undefined
  const busy = Math.max(0, machine.busy - window.machine.busy - (own - window.own))
  return Math.round((busy / (machine.total - window.machine.total)) * 1000) / 10
}

export function cpuMHz (cpuinfo = '/proc/cpuinfo'): number | null {
  const mhz = [...(read(cpuinfo) ?? '').matchAll(/^cpu MHz\s*:\s*([\d.]+)/gm)].map(m => Number(m[1]))
  if (mhz.length > 0) return Math.round(mhz.reduce((a, b) => a + b, 0) / mhz.length)
  // ARM boards report no "cpu MHz": cpufreq does
  const khz = Number(readTrimmed('/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq'))
  return Number.isFinite(khz) && khz > 0 ? Math.round(khz / 1000) : null
}

const AT_PAGESZ = 6n

/**
 * The host's memory page size from the process's auxiliary vector (AT_PAGESZ): 4 KiB on x86-64,
 * 16 KiB on a Raspberry Pi 5's 64-bit kernel, 64 KiB on some arm64 servers. Null when unknown.
 */
export function pageSizeFromAuxv (auxv: Uint8Array | undefined): number | null {
  if (auxv === undefined) return null
  const view = new DataView(auxv.buffer, auxv.byteOffset, auxv.byteLength)
  for (let at = 0; at + 16 <= auxv.byteLength; at += 16) {
    const key = view.getBigUint64(at, true)
    if (key === 0n) break
    if (key !== AT_PAGESZ) continue
    const size = Number(view.getBigUint64(at + 8, true))
    return size >= 4096 && (size & (size - 1)) === 0 ? size : null
  }
  return null
}

export function osFacts (platform: string, arch: string, osRelease = '/etc/os-release'): HardwareFacts['os'] {
  const text = read(osRelease) ?? ''
  const value = (key: string): string | undefined => {
    const m = new RegExp(`^${key}=(.*)$`, 'm').exec(text)
    return m === null ? undefined : m[1].replace(/^"(.*)"$/, '$1')
  }
  let auxv: Uint8Array | undefined
  try { auxv = readFileSync('/proc/self/auxv') } catch {}
  return { platform, distro: value('PRETTY_NAME') ?? value('NAME') ?? '', release: value('VERSION_ID') ?? release(), arch, pageSizeBytes: pageSizeFromAuxv(auxv) }
}

/** Batteries and mains supplies from /sys/class/power_supply. */
export function batteryFacts (dir = '/sys/class/power_supply'): HardwareFacts['battery'] {
  let names: string[] = []
  try { names = readdirSync(dir) } catch {}
  let present = false
  let charging = false
  let percent: number | null = null
  let discharging = false
  let mainsOnline: boolean | undefined
  for (const name of names) {
    const type = readTrimmed(`${dir}/${name}/type`)
    if (type === 'Battery' && readTrimmed(`${dir}/${name}/scope`) !== 'Device') {
      // a battery slot can be empty (laptops with removable packs)
      if (readTrimmed(`${dir}/${name}/present`) === '0') continue
      present = true
      const status = readTrimmed(`${dir}/${name}/status`) ?? ''
      if (status === 'Charging') charging = true
      if (status === 'Discharging') discharging = true
      const capacity = Number(readTrimmed(`${dir}/${name}/capacity`))
      if (Number.isFinite(capacity)) percent = capacity
    } else if (type === 'Mains' || type === 'USB') {
      mainsOnline = (mainsOnline ?? false) || readTrimmed(`${dir}/${name}/online`) === '1'
    }
  }
  if (!present) return { present: false, charging: false, percent: null, onBattery: false }
  const onBattery = mainsOnline === undefined ? discharging : !mainsOnline && !charging
  return { present, charging, percent, onBattery }
}

const HYPERVISORS: Array<[RegExp, string]> = [
  [/kvm/i, 'KVM'], [/qemu/i, 'QEMU'], [/vmware/i, 'VMware'], [/virtualbox|innotek/i, 'VirtualBox'],
  [/xen/i, 'Xen'], [/microsoft corporation|hyper-v/i, 'Hyper-V'], [/parallels/i, 'Parallels'],
  [/firecracker/i, 'Firecracker'], [/bochs/i, 'bochs'], [/amazon ec2/i, 'KVM'], [/google/i, 'KVM']
]

/** Whether this machine is itself a VM or a container, and of what. */
export function guestFacts (): { guest: boolean, guestOf: string | null, model: string | null } {
  const dmi = ['sys_vendor', 'product_name', 'board_vendor', 'bios_vendor'].map(f => readTrimmed(`/sys/class/dmi/id/${f}`) ?? '').join(' ')
  const model = readTrimmed('/proc/device-tree/model') ?? readTrimmed('/sys/class/dmi/id/product_name') ?? null
  const hypervisorFlag = /^flags\s*:.*\bhypervisor\b/m.test(read('/proc/cpuinfo') ?? '')
  const hypervisorType = readTrimmed('/sys/hypervisor/type')
  const named = HYPERVISORS.find(([pattern]) => pattern.test(dmi) || pattern.test(hypervisorType ?? ''))?.[1] ?? null
  const container = existsSync('/.dockerenv') || existsSync('/run/.containerenv') || /(docker|lxc|kubepods|containerd)/.test(read('/proc/1/cgroup') ?? '')
  const guest = hypervisorFlag || named !== null || container
  return { guest, guestOf: named ?? (container ? 'container' : null), model }
}

function linkTypeOf (name: string, internal: boolean): LinkType {
  if (internal) return 'virtual'
  if (existsSync(`/sys/class/net/${name}/wireless`) || existsSync(`/sys/class/net/${name}/phy80211`)) return 'wireless'
  let device = ''
  try { device = realpathSync(`/sys/class/net/${name}`) } catch { return 'unknown' }
  // bridges, veths, tunnels and the like live under /sys/devices/virtual
  if (device.includes('/devices/virtual/')) return 'virtual'
  return 'wired'
}

/** The machine's network interfaces with their kind, speed and state. */
export function interfaceFacts (): NetworkInterfaceFacts[] {
  return Object.entries(networkInterfaces()).map(([name, addrs]) => {
    const internal = (addrs ?? []).some(a => a.internal)
    const speed = Number(readTrimmed(`/sys/class/net/${name}/speed`))
    const state = readTrimmed(`/sys/class/net/${name}/operstate`)
    return {
      name,
      type: linkTypeOf(name, internal),
      speedMbps: Number.isFinite(speed) && speed > 0 ? speed : null,
      up: state === 'up' || ((state === 'unknown' || state === undefined) && ((addrs ?? []).length > 0)),
      internal
    }
  })
}
