/** The guest did something the VMM cannot go on from (triple fault, failed entry, stray I/O). */
export class GuestFaultError extends Error {
  readonly exitReason: number
  constructor (exitReason: number, message: string) {
    super(message)
    this.name = 'GuestFaultError'
    this.exitReason = exitReason
  }
}

/** The guest was stopped; it cannot be checkpointed, paused or resumed any more. */
export class GuestStoppedError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'GuestStoppedError'
  }
}

/** A memory image or vCPU state that cannot start a guest (wrong size, wrong layout). */
export class InvalidGuestImageError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidGuestImageError'
  }
}

/** The guest's engine cannot run on this machine (e.g. `kvm` without a usable /dev/kvm). */
export class EngineUnavailableError extends Error {
  readonly engine: string
  constructor (engine: string, reason: string) {
    super(`the ${engine} engine cannot run here: ${reason}`)
    this.name = 'EngineUnavailableError'
    this.engine = engine
  }
}
