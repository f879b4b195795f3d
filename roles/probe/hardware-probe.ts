// Measures this machine from Linux's procfs and sysfs (linux-facts.ts), node:os and statfs.
// Only the load needs time (two /proc/stat samples); it is bounded by the probe's deadline,
// so a starved machine reports its load unknown instead of holding the node's start-up.
import { cpus, availableParallelism, arch, platform, uptime, totalmem, freemem } from 'node:os'
import { statfsSync } from 'node:fs'
import type { HardwareFacts } from './hardware-facts.ts'
import { kvmUsable } from './kvm.ts'
import { raspberryPiModel } from './raspberry-pi.ts'
import { memoryFacts, loadPercent, cpuMHz, osFacts, batteryFacts, guestFacts, interfaceFacts, type LoadWindow } from './linux-facts.ts'

export interface HardwareProbeOptions {
  /** The node's data directory: its filesystem's size and free space are measured. */
  dataDir: string
  /** Deadline for the whole probe; what is not measured by then becomes an unknown fact. */
  timeoutMs?: number
  signal?: AbortSignal
  now?: () => number
  kvmDevice?: string
  /** A load sample begun earlier (openLoadWindow): the probe waits only for what is left of it. */
  loadWindow?: LoadWindow
}

export const DEFAULT_PROBE_TIMEOUT_MS = 3_000
/** How long the load is sampled: long enough for a few scheduler ticks on every core. */
const LOAD_SAMPLE_MS = 250

export async function probeHardware (options: HardwareProbeOptions): Promise<HardwareFacts> {
  const now = options.now ?? Date.now
  const timeoutMs = options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS
  const unknown: string[] = []
  const linux = platform() === 'linux'

  const sampleMs = Math.min(LOAD_SAMPLE_MS, Math.max(0, timeoutMs - 10))
  const load = linux && sampleMs > 0 ? await loadPercent(sampleMs, options.signal, options.loadWindow) : undefined
  options.signal?.throwIfAborted()
  if (load === undefined) unknown.push('cpu.loadPercent')

  const model = cpus()[0]?.model?.trim() ?? ''
  if (model === '') unknown.push('cpu.model')
  const speedMHz = (cpus()[0]?.speed ?? 0) > 0 ? cpus()[0].speed : linux ? cpuMHz() : null
  if (speedMHz === null) unknown.push('cpu.speedMHz')

  const measuredMemory = linux ? memoryFacts() : undefined
  // os.freemem() counts page cache as used; MemAvailable is what a new workload can get
  if (measuredMemory === undefined) unknown.push('memory.availableBytes')
  const memory = measuredMemory ?? { totalBytes: totalmem(), availableBytes: freemem() }

  let disk: HardwareFacts['disk'] = { path: options.dataDir, sizeBytes: null, freeBytes: null }
  try {
    const fs = statfsSync(options.dataDir)
    disk = { path: options.dataDir, sizeBytes: fs.blocks * fs.bsize, freeBytes: fs.bavail * fs.bsize }
  } catch {
    unknown.push('disk')
  }

  const os = osFacts(platform(), arch())
  if (os.distro === '') unknown.push('os.distro')
  if (!linux) unknown.push('battery', 'virtualization.guest', 'interfaces')
  const power = linux ? batteryFacts() : { present: false, charging: false, percent: null, onBattery: false }
  const guest = linux ? guestFacts() : { guest: null, guestOf: null, model: null }
  const interfaces = linux ? interfaceFacts() : []

  return {
    measuredAt: now(),
    cpu: { model, cores: availableParallelism(), speedMHz, loadPercent: load ?? null },
    memory,
    disk,
    os,
    battery: power,
    raspberryPi: raspberryPiModel(guest.model),
    virtualization: {
      guest: guest.guest,
      guestOf: guest.guestOf,
      kvm: kvmUsable(options.kvmDevice)
    },
    uptimeSeconds: Math.round(uptime()),
    interfaces,
    unknown
  }
}

/** Only the power source: cheap enough to poll, so unplugging is noticed within seconds. */
export async function probeBattery (): Promise<HardwareFacts['battery'] | undefined> {
  return platform() === 'linux' ? batteryFacts() : undefined
}
