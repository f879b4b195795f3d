// Measures this machine through systeminformation, every query in parallel and each bounded
// by one deadline: a slow query (some shell out) leaves its fact unknown instead of
// holding the node's start-up.
import si from 'systeminformation'
import { cpus, availableParallelism, totalmem, freemem, arch, platform, uptime } from 'node:os'
import { statfsSync, readFileSync } from 'node:fs'
import type { HardwareFacts, LinkType, NetworkInterfaceFacts } from './hardware-facts.ts'
import { kvmUsable } from './kvm.ts'
import { raspberryPiModel } from './raspberry-pi.ts'

export interface HardwareProbeOptions {
  /** The node's data directory: its filesystem's size and free space are measured. */
  dataDir: string
  /** Deadline for the whole probe; unanswered queries become unknown facts. */
  timeoutMs?: number
  signal?: AbortSignal
  now?: () => number
  kvmDevice?: string
}

export const DEFAULT_PROBE_TIMEOUT_MS = 3_000

class TimedOut {}
const TIMED_OUT = new TimedOut()

function bounded<T> (work: () => Promise<T>, deadline: Promise<TimedOut>): Promise<T | TimedOut> {
  return Promise.race([work().catch(() => TIMED_OUT), deadline])
}

function cpuMHzFromProcfs (): number | null {
  try {
    const mhz = [...readFileSync('/proc/cpuinfo', 'utf8').matchAll(/^cpu MHz\s*:\s*([\d.]+)/gm)].map(m => Number(m[1]))
    if (mhz.length === 0) return null
    return Math.round(mhz.reduce((a, b) => a + b, 0) / mhz.length)
  } catch {
    return null
  }
}

function linkType (type: string | undefined, virtual: boolean | undefined, internal: boolean): LinkType {
  if (internal || virtual === true || type === 'virtual') return 'virtual'
  if (type === 'wired' || type === 'wireless') return type
  return 'unknown'
}

export async function probeHardware (options: HardwareProbeOptions): Promise<HardwareFacts> {
  const now = options.now ?? Date.now
  const timeoutMs = options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS
  const unknown: string[] = []
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<TimedOut>((resolve) => {
    timer = setTimeout(() => { resolve(TIMED_OUT) }, timeoutMs)
    options.signal?.addEventListener('abort', () => { resolve(TIMED_OUT) }, { once: true })
  })

  const [cpu, load, mem, osInfo, battery, system, nets] = await Promise.all([
    bounded(() => si.cpu(), deadline),
    bounded(() => si.currentLoad(), deadline),
    bounded(() => si.mem(), deadline),
    bounded(() => si.osInfo(), deadline),
    bounded(() => si.battery(), deadline),
    bounded(() => si.system(), deadline),
    bounded(() => si.networkInterfaces(), deadline)
  ])
  clearTimeout(timer)
  options.signal?.throwIfAborted()

  const osCpus = cpus()
  let model = osCpus[0]?.model?.trim() ?? ''
  if (model === '' && !(cpu instanceof TimedOut)) model = `${cpu.manufacturer} ${cpu.brand}`.trim()
  if (model === '') unknown.push('cpu.model')
  let speedMHz: number | null = !(cpu instanceof TimedOut) && cpu.speed > 0 ? Math.round(cpu.speed * 1000) : null
  if (speedMHz === null && (osCpus[0]?.speed ?? 0) > 0) speedMHz = osCpus[0].speed
  speedMHz ??= cpuMHzFromProcfs()
  if (speedMHz === null) unknown.push('cpu.speedMHz')
  const loadPercent = load instanceof TimedOut ? null : Math.round(load.currentLoad * 10) / 10
  if (loadPercent === null) unknown.push('cpu.loadPercent')

  // os.freemem() counts page cache as used; MemAvailable is what a new workload can get
  if (mem instanceof TimedOut) unknown.push('memory.availableBytes')
  const memory = mem instanceof TimedOut
    ? { totalBytes: totalmem(), availableBytes: freemem() }
    : { totalBytes: mem.total, availableBytes: mem.available }

  let disk: HardwareFacts['disk'] = { path: options.dataDir, sizeBytes: null, freeBytes: null }
  try {
    const fs = statfsSync(options.dataDir)
    disk = { path: options.dataDir, sizeBytes: fs.blocks * fs.bsize, freeBytes: fs.bavail * fs.bsize }
  } catch {
    unknown.push('disk')
  }

  if (osInfo instanceof TimedOut) unknown.push('os.distro')
  const os = osInfo instanceof TimedOut
    ? { platform: platform(), distro: '', release: '', arch: arch() }
    : { platform: osInfo.platform, distro: osInfo.distro, release: osInfo.release, arch: arch() }

  if (battery instanceof TimedOut) unknown.push('battery')
  const power = battery instanceof TimedOut || !battery.hasBattery
    ? { present: false, charging: false, percent: null, onBattery: false }
    : { present: true, charging: battery.isCharging, percent: battery.percent, onBattery: !battery.acConnected && !battery.isCharging }

  if (system instanceof TimedOut) unknown.push('virtualization.guest')
  const systemModel = system instanceof TimedOut ? null : system.model

  let interfaces: NetworkInterfaceFacts[] = []
  if (nets instanceof TimedOut) unknown.push('interfaces')
  else {
    interfaces = nets.map(n => ({
      name: n.iface,
      type: linkType(n.type, n.virtual, n.internal),
      speedMbps: typeof n.speed === 'number' && n.speed > 0 ? n.speed : null,
      up: n.operstate === 'up' || (n.operstate === 'unknown' && n.internal),
      internal: n.internal
    }))
  }

  return {
    measuredAt: now(),
    cpu: { model, cores: availableParallelism(), speedMHz, loadPercent },
    memory,
    disk,
    os,
    battery: power,
    raspberryPi: raspberryPiModel(systemModel),
    virtualization: {
      guest: system instanceof TimedOut ? null : system.virtual,
      guestOf: system instanceof TimedOut ? null : (system.virtualHost ?? null) || null,
      kvm: kvmUsable(options.kvmDevice)
    },
    uptimeSeconds: Math.round(uptime()),
    interfaces,
    unknown
  }
}

/** Only the power source: cheap enough to poll, so unplugging is noticed within seconds. */
export async function probeBattery (timeoutMs = 2_000): Promise<HardwareFacts['battery'] | undefined> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<TimedOut>((resolve) => { timer = setTimeout(() => { resolve(TIMED_OUT) }, timeoutMs) })
  const battery = await bounded(() => si.battery(), deadline)
  clearTimeout(timer)
  if (battery instanceof TimedOut) return undefined
  if (!battery.hasBattery) return { present: false, charging: false, percent: null, onBattery: false }
  return { present: true, charging: battery.isCharging, percent: battery.percent, onBattery: !battery.acConnected && !battery.isCharging }
}
