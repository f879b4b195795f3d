// Injected hardware profiles replace measured facts: the multi-process harness runs many
// nodes on one machine and needs them to look like different machines, and an operator can
// pin a figure the probe gets wrong. A profile is untrusted input (a file, an environment
// variable), so it is validated here, once, against the shape of the facts it overrides.
import { readFileSync } from 'node:fs'
import type { HardwareFacts, NetworkFacts } from './hardware-facts.ts'
import { BUILT_IN_PROFILES, isBuiltInProfileName, type BuiltInProfileName } from './hardware-profiles.ts'
import { probeHardware, type HardwareProbeOptions } from './hardware-probe.ts'

export const HARDWARE_PROFILE_ENV = 'MYCELIUM_HARDWARE_PROFILE'

export class HardwareProfileError extends Error {
  readonly name = 'HardwareProfileError'
}

type DeepPartial<T> = T extends Array<infer U> ? U[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T

export type MeasuredHardware = Omit<HardwareFacts, 'measuredAt' | 'unknown' | 'profile'>

export interface HardwareProfile {
  name: string
  /** 'measured' overrides only the given facts; a built-in name replaces the probe entirely. */
  base: 'measured' | BuiltInProfileName
  hardware: DeepPartial<MeasuredHardware>
  network: Partial<Omit<NetworkFacts, 'measuredAt' | 'peers'>>
}

type Leaf = 'string' | 'number' | 'number?' | 'boolean' | 'boolean?' | 'string?' | 'interfaces'
type Shape = { [key: string]: Leaf | Shape }

const HARDWARE_SHAPE: Shape = {
  cpu: { model: 'string', cores: 'number', speedMHz: 'number?', loadPercent: 'number?' },
  memory: { totalBytes: 'number', availableBytes: 'number' },
  disk: { path: 'string', sizeBytes: 'number?', freeBytes: 'number?' },
  os: { platform: 'string', distro: 'string', release: 'string', arch: 'string' },
  battery: { present: 'boolean', charging: 'boolean', percent: 'number?', onBattery: 'boolean' },
  raspberryPi: 'string?',
  virtualization: { guest: 'boolean?', guestOf: 'string?', kvm: 'boolean' },
  uptimeSeconds: 'number',
  interfaces: 'interfaces'
}

const NETWORK_SHAPE: Shape = { reachable: 'boolean?', rttMs: 'number?', throughputMbps: 'number?' }
const LINK_TYPES = new Set(['wired', 'wireless', 'virtual', 'unknown'])

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkLeaf (leaf: Leaf, value: unknown, path: string): void {
  const nullable = leaf.endsWith('?')
  if (value === null && nullable) return
  const type = leaf.replace('?', '')
  if (type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new HardwareProfileError(`${path} must be a non-negative number${nullable ? ' or null' : ''}`)
    return
  }
  if (type === 'interfaces') {
    if (!Array.isArray(value) || value.length > 64) throw new HardwareProfileError(`${path} must be a list of at most 64 interfaces`)
    value.forEach((item, i) => {
      checkShape({ name: 'string', type: 'string', speedMbps: 'number?', up: 'boolean', internal: 'boolean' }, item, `${path}[${i}]`, true)
      if (!LINK_TYPES.has((item as { type: string }).type)) throw new HardwareProfileError(`${path}[${i}].type must be one of ${[...LINK_TYPES].join(', ')}`)
    })
    return
  }
  if (typeof value !== type) throw new HardwareProfileError(`${path} must be a ${type}${nullable ? ' or null' : ''}`)
  if (type === 'string' && (value as string).length > 256) throw new HardwareProfileError(`${path} is longer than 256 characters`)
}

function checkShape (shape: Shape, value: unknown, path: string, complete = false): void {
  if (!isRecord(value)) throw new HardwareProfileError(`${path} must be an object`)
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(shape, key)) throw new HardwareProfileError(`${path}.${key} is not a known fact`)
  }
  for (const [key, spec] of Object.entries(shape)) {
    if (!Object.hasOwn(value, key)) {
      if (complete) throw new HardwareProfileError(`${path}.${key} is missing`)
      continue
    }
    if (typeof spec === 'string') checkLeaf(spec, value[key], `${path}.${key}`)
    else checkShape(spec, value[key], `${path}.${key}`, complete)
  }
}

/** Validates a profile given as a parsed JSON value. */
export function parseHardwareProfile (value: unknown, fallbackName = 'custom'): HardwareProfile {
  if (!isRecord(value)) throw new HardwareProfileError('a hardware profile must be a JSON object')
  for (const key of Object.keys(value)) {
    if (!['name', 'base', 'hardware', 'network'].includes(key)) throw new HardwareProfileError(`unknown profile field "${key}" (expected name, base, hardware, network)`)
  }
  const base = value.base ?? 'measured'
  if (typeof base !== 'string' || (base !== 'measured' && !isBuiltInProfileName(base))) {
    throw new HardwareProfileError(`profile base must be "measured" or one of ${Object.keys(BUILT_IN_PROFILES).join(', ')}`)
  }
  const name = value.name ?? (base === 'measured' ? fallbackName : base)
  if (typeof name !== 'string' || name.length === 0 || name.length > 64) throw new HardwareProfileError('profile name must be a string of 1–64 characters')
  const hardware = value.hardware ?? {}
  const network = value.network ?? {}
  checkShape(HARDWARE_SHAPE, hardware, 'hardware')
  checkShape(NETWORK_SHAPE, network, 'network')
  return { name, base, hardware: hardware as HardwareProfile['hardware'], network: network as HardwareProfile['network'] }
}

/**
 * A profile from its specification: a built-in name (`raspberry-pi-4`), inline JSON
 * (`{"base":"server-kvm","network":{"reachable":false}}`) or the path of a JSON file.
 */
export function loadHardwareProfile (spec: string): HardwareProfile {
  const trimmed = spec.trim()
  if (isBuiltInProfileName(trimmed)) return { name: trimmed, base: trimmed, hardware: {}, network: {} }
  let text = trimmed
  if (!trimmed.startsWith('{')) {
    try {
      text = readFileSync(trimmed, 'utf8')
    } catch (err) {
      throw new HardwareProfileError(`"${trimmed.slice(0, 200)}" is neither a built-in profile (${Object.keys(BUILT_IN_PROFILES).join(', ')}) nor a readable file: ${(err as Error).message}`)
    }
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new HardwareProfileError(`hardware profile is not valid JSON: ${(err as Error).message}`)
  }
  return parseHardwareProfile(parsed)
}

/** The profile named by MYCELIUM_HARDWARE_PROFILE, if set. */
export function hardwareProfileFromEnv (env: Record<string, string | undefined> = process.env): HardwareProfile | undefined {
  const spec = env[HARDWARE_PROFILE_ENV]
  if (spec === undefined || spec.trim() === '') return undefined
  return loadHardwareProfile(spec)
}

function merge<T> (base: T, patch: unknown): T {
  if (!isRecord(patch) || !isRecord(base)) return (patch === undefined ? base : patch) as T
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(patch)) out[key] = merge(out[key], value)
  return out as T
}

export interface MeasureHardwareOptions extends HardwareProbeOptions {
  profile?: HardwareProfile
}

/** Measures this machine, or stands in the injected profile for it. */
export async function measureHardware (options: MeasureHardwareOptions): Promise<HardwareFacts> {
  const now = options.now ?? Date.now
  const profile = options.profile
  if (profile === undefined) return await probeHardware(options)
  if (profile.base === 'measured') {
    const measured = await probeHardware(options)
    const overridden = new Set(Object.keys(profile.hardware))
    return { ...merge(measured, profile.hardware), unknown: measured.unknown.filter(f => !overridden.has(f.split('.')[0])), profile: profile.name }
  }
  const base = BUILT_IN_PROFILES[profile.base].hardware as MeasuredHardware
  return { ...merge(base, profile.hardware), measuredAt: now(), unknown: [], profile: profile.name }
}

/** Network facts with the profile's overrides applied (an "unreachable" profile stays unreachable). */
export function profiledNetwork (measured: NetworkFacts, profile: HardwareProfile | undefined): NetworkFacts {
  if (profile === undefined) return measured
  const base = profile.base === 'measured' ? {} : (BUILT_IN_PROFILES[profile.base] as { network?: Partial<NetworkFacts> }).network ?? {}
  const fixed = { ...base, ...profile.network }
  return { ...measured, ...fixed }
}
