// What this machine lets the suite test. Machines of this project's kind differ (hardware
// KVM, PVM or no /dev/kvm; network namespaces; qemu-user for the arm64 stand-in; Chromium),
// and a test that cannot run here must be reported as skipped with its reason, never as a
// pass. Tests decide with these checks, and `.ci/run` prints the same reasons at the end of
// the run (test/harness/not-tested.ts), so the two cannot disagree.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { probeKvm } from '../../ram-replication/index.ts'
import type { GuestEngine } from '../../ram-replication/index.ts'
import { netnsUnavailableReason } from './netns.ts'

export interface Capability {
  /** what the capability is called in the "not tested here" block */
  name: string
  /** why it cannot be tested here, or undefined when it can */
  missing: string | undefined
}

function kvmMissing (): string | undefined {
  // the same criterion as the KVM suites: /dev/kvm opens read-write (hardware KVM or PVM)
  const report = probeKvm()
  if (report.opens) return undefined
  return report.error?.message ?? 'cannot open /dev/kvm'
}

export const QEMU_AARCH64 = ['/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-aarch64'].find(p => existsSync(p))
export const AARCH64_SYSROOT = '/usr/aarch64-linux-gnu'

function arm64Missing (): string | undefined {
  if (QEMU_AARCH64 === undefined) return 'no qemu-aarch64-static (Debian: qemu-user-static)'
  if (!existsSync(join(AARCH64_SYSROOT, 'lib/ld-linux-aarch64.so.1'))) return `no aarch64 C library in ${AARCH64_SYSROOT} (Debian: libc6-arm64-cross, libstdc++6-arm64-cross)`
  return undefined
}

/**
 * The kernel hands aarch64 executables to qemu (binfmt_misc), so an installed aarch64 command
 * runs as it would on a Raspberry Pi; the C library comes from QEMU_LD_PREFIX.
 */
function arm64BinfmtMissing (): string | undefined {
  const qemu = arm64Missing()
  if (qemu !== undefined) return qemu
  let entry = ''
  try { entry = readFileSync('/proc/sys/fs/binfmt_misc/qemu-aarch64', 'utf8') } catch {}
  if (!entry.startsWith('enabled')) return 'qemu-aarch64 is not registered with binfmt_misc (as root: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64)'
  return undefined
}

export const CHROMIUM_PATH = '/usr/bin/chromium'

function chromiumMissing (): string | undefined {
  return existsSync(CHROMIUM_PATH) ? undefined : `${CHROMIUM_PATH} is missing (Debian: chromium)`
}

let cached: Record<'kvm' | 'netns' | 'arm64' | 'arm64Binfmt' | 'chromium', Capability> | undefined

/** Every capability the suite can use, checked once per process. */
export function capabilities (): Record<'kvm' | 'netns' | 'arm64' | 'arm64Binfmt' | 'chromium', Capability> {
  cached ??= {
    kvm: { name: 'KVM', missing: kvmMissing() },
    netns: { name: 'network namespaces', missing: netnsUnavailableReason() },
    arm64: { name: 'arm64 under qemu-user', missing: arm64Missing() },
    arm64Binfmt: { name: 'arm64 commands through binfmt_misc', missing: arm64BinfmtMissing() },
    chromium: { name: 'Chromium', missing: chromiumMissing() }
  }
  return cached
}

/** A suite title that says why it is skipped here, so the skip is visible in every report. */
export function titled (title: string, capability: Capability): string {
  return capability.missing === undefined ? title : `${title} (not tested here: ${capability.name}: ${capability.missing})`
}

/**
 * The execution engines a guest suite runs over: the interpreter on every machine, KVM where
 * /dev/kvm opens (otherwise that variant is skipped with the reason in its title).
 */
export function guestEngineVariants (): Array<{ engine: GuestEngine, capability: Capability }> {
  return [
    { engine: 'interpreted', capability: { name: 'interpreted engine', missing: undefined } },
    { engine: 'kvm', capability: capabilities().kvm }
  ]
}
