// Which engine runs a guest: KVM where /dev/kvm is usable, the interpreter anywhere. One place
// decides what each engine needs, so the daemon and the tests ask the same question.
import { probeKvm } from '../kvm/capabilities.ts'
import { InterpretedGuest, interpretedGuestRestorer } from './interpreted-guest.ts'
import { KvmGuest, kvmGuestRestorer } from './kvm-guest.ts'
import { prewarmVcpuThread } from './vcpu-thread.ts'
import type { PageWriterParams } from '../guest/page-writer.ts'
import { EngineUnavailableError, InvalidGuestImageError } from './errors.ts'
import { GUEST_ENGINES } from './running-guest.ts'
import type { GuestCommonOptions, GuestEngine, GuestImage, RunningGuest, RunningGuestRestorer } from './running-guest.ts'

export interface StartGuestOptions extends GuestCommonOptions {
  memoryBytes?: number
  workload?: Partial<PageWriterParams>
}

/** Why `engine` cannot run guests on this machine, or undefined when it can. */
export function engineUnavailable (engine: GuestEngine): string | undefined {
  if (engine === 'interpreted') return undefined
  try {
    return probeKvm().error?.message
  } catch (error) {
    // A probe that fails outright (an odd device, no native binding) is a "no" too.
    return (error as Error).message
  }
}

/** The engines that can run guests here, KVM first. */
export function availableEngines (): GuestEngine[] {
  return engineUnavailable('kvm') === undefined ? ['kvm', 'interpreted'] : ['interpreted']
}

/** KVM where it is usable, the interpreter otherwise. */
export function defaultEngine (): GuestEngine {
  return availableEngines()[0]
}

export async function startGuest (engine: GuestEngine, options: StartGuestOptions = {}): Promise<RunningGuest> {
  return engine === 'kvm' ? await KvmGuest.start(options) : await InterpretedGuest.start(options)
}

/** The restorer for a backup of a VM that ran on `engine`: a guest resumes on the engine it ran on. */
export function guestRestorer (engine: GuestEngine): RunningGuestRestorer {
  return engine === 'kvm' ? kvmGuestRestorer() : interpretedGuestRestorer()
}

/** An engine name from the wire or a request: one of GUEST_ENGINES, or an InvalidGuestImageError. */
export function parseGuestEngine (value: string | undefined): GuestEngine {
  // Primaries older than the interpreter name no engine: they ran KVM.
  if (value === undefined) return 'kvm'
  if (!(GUEST_ENGINES as readonly string[]).includes(value)) throw new InvalidGuestImageError(`unknown guest engine ${JSON.stringify(value)} (this node runs ${GUEST_ENGINES.join(', ')})`)
  return value as GuestEngine
}

/**
 * A backup's restorer: each image resumes on the engine its primary ran it on, and an image
 * whose engine cannot run here is refused with the reason rather than moved to another engine.
 */
export function engineRestorer (): ((image: GuestImage & { engine?: string }, options?: { signal?: AbortSignal }) => Promise<RunningGuest>) & { prepare: (engine: string | undefined) => void } {
  const restore = async (image: GuestImage & { engine?: string }, options: { signal?: AbortSignal } = {}): Promise<RunningGuest> => {
    const engine = parseGuestEngine(image.engine)
    const missing = engineUnavailable(engine)
    if (missing !== undefined) throw new EngineUnavailableError(engine, missing)
    return await guestRestorer(engine)(image, options)
  }
  // A replica is coming: a KVM resume needs a vCPU thread, started now rather than in the
  // failover's or handover's downtime. (Only the first stripe names the engine; unnamed is KVM.)
  const prepare = (engine: string | undefined): void => {
    if (engine !== 'interpreted' && engineUnavailable('kvm') === undefined) prewarmVcpuThread()
  }
  return Object.assign(restore, { prepare })
}
