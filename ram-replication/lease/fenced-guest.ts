// The lease's hold on a guest, kept apart from every other pause. The replication engine pauses
// and resumes the guest for checkpoints, emergency modes and migration; if the fence used the
// same switch, the engine's next resume would run a guest whose lease had ended. Here the vCPU
// runs only when neither the fence nor anyone else wants it stopped.
export interface Pausable {
  pause: () => Promise<void>
  resume: () => void
}

export interface Fence {
  /** Stop the vCPU for the lease; nothing but unfence() lets it run again. */
  fence: () => Promise<void>
  unfence: () => void
  readonly fenced: boolean
}

export function fencedGuest<T extends Pausable> (guest: T): T & Fence {
  let fenced = false
  let pausedByOthers = false
  const controls = {
    fence: async (): Promise<void> => { fenced = true; await guest.pause() },
    unfence: (): void => { fenced = false; if (!pausedByOthers) guest.resume() },
    pause: async (): Promise<void> => { pausedByOthers = true; await guest.pause() },
    resume: (): void => { pausedByOthers = false; if (!fenced) guest.resume() }
  }
  return new Proxy(guest, {
    get (target, property) {
      if (property === 'fenced') return fenced
      if (Object.prototype.hasOwnProperty.call(controls, property)) return controls[property as keyof typeof controls]
      const value = Reflect.get(target, property, target) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    }
  }) as T & Fence
}
