// Reference machines. They are the fixtures of the policy tests and the profiles the
// multi-process harness injects (MYCELIUM_HARDWARE_PROFILE=raspberry-pi-4), so many nodes
// on one machine can stand for a varied network.
import type { HardwareFacts, NetworkFacts } from './hardware-facts.ts'

const GiB = 1024 ** 3
const MiB = 1024 ** 2

export interface BuiltInProfile {
  hardware: Omit<HardwareFacts, 'measuredAt' | 'unknown' | 'profile'>
  network?: Partial<Omit<NetworkFacts, 'measuredAt'>>
}

const linux = { platform: 'linux', distro: 'Debian GNU/Linux', release: '12' }

export const BUILT_IN_PROFILES = {
  'raspberry-pi-4': {
    hardware: {
      cpu: { model: 'Cortex-A72', cores: 4, speedMHz: 1500, loadPercent: 8 },
      memory: { totalBytes: 4 * GiB, availableBytes: 3.4 * GiB },
      disk: { path: '/var/lib/mycelium', sizeBytes: 64 * GiB, freeBytes: 48 * GiB },
      os: { ...linux, arch: 'arm64' },
      battery: { present: false, charging: false, percent: null, onBattery: false },
      raspberryPi: 'Raspberry Pi 4 Model B Rev 1.4',
      virtualization: { guest: false, guestOf: null, kvm: false },
      uptimeSeconds: 30 * 86_400,
      interfaces: [{ name: 'eth0', type: 'wired', speedMbps: 1000, up: true, internal: false }]
    },
    network: { reachable: true, rttMs: 2, throughputMbps: 300 }
  },
  'pi-zero-2w': {
    hardware: {
      cpu: { model: 'Cortex-A53', cores: 4, speedMHz: 1000, loadPercent: 20 },
      memory: { totalBytes: 512 * MiB, availableBytes: 300 * MiB },
      disk: { path: '/var/lib/mycelium', sizeBytes: 16 * GiB, freeBytes: 9 * GiB },
      os: { ...linux, arch: 'arm64' },
      battery: { present: false, charging: false, percent: null, onBattery: false },
      raspberryPi: 'Raspberry Pi Zero 2 W Rev 1.0',
      virtualization: { guest: false, guestOf: null, kvm: false },
      uptimeSeconds: 5 * 86_400,
      interfaces: [{ name: 'wlan0', type: 'wireless', speedMbps: null, up: true, internal: false }]
    },
    network: { reachable: true, rttMs: 12, throughputMbps: 20 }
  },
  'laptop-battery': {
    hardware: {
      cpu: { model: 'Intel(R) Core(TM) i7-1165G7', cores: 8, speedMHz: 2800, loadPercent: 15 },
      memory: { totalBytes: 16 * GiB, availableBytes: 9 * GiB },
      disk: { path: '/home/user/.mycelium', sizeBytes: 512 * GiB, freeBytes: 200 * GiB },
      os: { ...linux, arch: 'x64' },
      battery: { present: true, charging: false, percent: 64, onBattery: true },
      raspberryPi: null,
      virtualization: { guest: false, guestOf: null, kvm: true },
      uptimeSeconds: 3 * 3_600,
      interfaces: [{ name: 'wlp0s20f3', type: 'wireless', speedMbps: null, up: true, internal: false }]
    },
    network: { reachable: true, rttMs: 8, throughputMbps: 200 }
  },
  'laptop-mains': {
    hardware: {
      cpu: { model: 'Intel(R) Core(TM) i7-1165G7', cores: 8, speedMHz: 2800, loadPercent: 15 },
      memory: { totalBytes: 16 * GiB, availableBytes: 9 * GiB },
      disk: { path: '/home/user/.mycelium', sizeBytes: 512 * GiB, freeBytes: 200 * GiB },
      os: { ...linux, arch: 'x64' },
      battery: { present: true, charging: true, percent: 80, onBattery: false },
      raspberryPi: null,
      virtualization: { guest: false, guestOf: null, kvm: true },
      uptimeSeconds: 3 * 3_600,
      interfaces: [{ name: 'wlp0s20f3', type: 'wireless', speedMbps: null, up: true, internal: false }]
    },
    network: { reachable: true, rttMs: 8, throughputMbps: 200 }
  },
  'server-kvm': {
    hardware: {
      cpu: { model: 'AMD EPYC 7443P', cores: 24, speedMHz: 2850, loadPercent: 10 },
      memory: { totalBytes: 128 * GiB, availableBytes: 100 * GiB },
      disk: { path: '/var/lib/mycelium', sizeBytes: 2048 * GiB, freeBytes: 1500 * GiB },
      os: { ...linux, arch: 'x64' },
      battery: { present: false, charging: false, percent: null, onBattery: false },
      raspberryPi: null,
      virtualization: { guest: false, guestOf: null, kvm: true },
      uptimeSeconds: 90 * 86_400,
      interfaces: [{ name: 'enp1s0', type: 'wired', speedMbps: 10_000, up: true, internal: false }]
    },
    network: { reachable: true, rttMs: 1, throughputMbps: 900 }
  },
  // A capable mini PC behind a NAT nobody can dial into.
  unreachable: {
    hardware: {
      cpu: { model: 'Intel(R) N100', cores: 4, speedMHz: 3400, loadPercent: 5 },
      memory: { totalBytes: 16 * GiB, availableBytes: 14 * GiB },
      disk: { path: '/var/lib/mycelium', sizeBytes: 512 * GiB, freeBytes: 400 * GiB },
      os: { ...linux, arch: 'x64' },
      battery: { present: false, charging: false, percent: null, onBattery: false },
      raspberryPi: null,
      virtualization: { guest: false, guestOf: null, kvm: true },
      uptimeSeconds: 20 * 86_400,
      interfaces: [{ name: 'enp2s0', type: 'wired', speedMbps: 1000, up: true, internal: false }]
    },
    network: { reachable: false, rttMs: 20, throughputMbps: 50 }
  }
} satisfies Record<string, BuiltInProfile>

export type BuiltInProfileName = keyof typeof BUILT_IN_PROFILES

export function isBuiltInProfileName (name: string): name is BuiltInProfileName {
  return Object.hasOwn(BUILT_IN_PROFILES, name)
}
