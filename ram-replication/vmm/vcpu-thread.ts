// KVM_RUN on a thread of the VMM's own, so the VMM can stop a guest at any instant.
//
// A vCPU inside KVM_RUN leaves the guest only at an exit the guest causes, or when a signal
// reaches the very thread that runs it (KVM_RUN then returns EINTR, KVM_EXIT_INTR). koffi's
// `.async` runs calls on a pool thread nobody can name, so the VMM keeps one worker thread per
// vCPU that does nothing but KVM_RUN: it reports its kernel thread id once, then enters the
// guest each time the event loop asks and says when it came back. A kick is Firecracker's:
// set `immediate_exit` in the vCPU's `kvm_run` page (an entry that has not begun returns at
// once) and send the kick signal to that thread (an entry under way returns). Either way the
// vCPU stops at an instruction boundary with all of its state in the kernel, where the VMM
// reads and saves it as after any exit.
//
// The signal needs a handler (a signal whose action is "ignore" is dropped before it can
// interrupt anything); the process installs an empty one. The worker unblocks the signal for
// itself, whatever mask it inherited.
//
// Starting a worker takes ~40 ms here, which a failover or a migration's handover would add to
// the guest's downtime. So a thread is not tied to one vCPU (the fd comes with each entry), a
// freed thread waits as the process's one spare, and a backup that will resume a KVM guest
// warms one in advance (`prewarmVcpuThread`).
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { constants } from 'node:os'
import { KVM_RUN } from '../kvm/binding.ts'

/** The signal that interrupts KVM_RUN. SIGUSR2: Node uses SIGUSR1 for its inspector. */
export const KICK_SIGNAL = 'SIGUSR2'

// Words of the control block shared with the thread.
const COMMAND = 0
const RESULT = 1
const ERRNO = 2
const DONE = 3
const THREAD_ID = 4
const FD = 5
const CONTROL_WORDS = 6
const IDLE = 0
const RUN = 1
const QUIT = 2

/** The thread's whole program, evaluated as CommonJS in the worker (no bundling needed). */
const THREAD_SOURCE = `
const { workerData } = require('node:worker_threads')
const koffi = require(workerData.koffiPath)
const libc = koffi.load('libc.so.6')
const ioctl = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long'])
const gettid = libc.func('int gettid()')
const errnoLocation = libc.func('int *__errno_location()')
const sigmask = libc.func('int pthread_sigmask(int how, const uint8_t *set, uint8_t *old)')
const control = new Int32Array(workerData.control)
const set = new Uint8Array(128)
set[(workerData.signal - 1) >> 3] |= 1 << ((workerData.signal - 1) & 7)
if (sigmask(1 /* SIG_UNBLOCK */, set, null) !== 0) throw new Error('pthread_sigmask failed')
Atomics.store(control, ${THREAD_ID}, gettid())
Atomics.notify(control, ${THREAD_ID})
for (;;) {
  Atomics.wait(control, ${COMMAND}, ${IDLE})
  const command = Atomics.exchange(control, ${COMMAND}, ${IDLE})
  if (command === ${QUIT}) break
  if (command !== ${RUN}) continue
  const result = ioctl(control[${FD}], workerData.request, 0)
  control[${ERRNO}] = result < 0 ? koffi.decode(errnoLocation(), 'int') : 0
  control[${RESULT}] = result
  Atomics.add(control, ${DONE}, 1)
  Atomics.notify(control, ${DONE})
}
`

let handlerInstalled = false
function installKickHandler (): void {
  if (handlerInstalled) return
  handlerInstalled = true
  // Empty on purpose: the kick's whole effect is the interrupted KVM_RUN.
  process.on(KICK_SIGNAL, () => {})
}

export class VcpuThreadError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'VcpuThreadError'
  }
}

export interface VcpuRunResult {
  /** KVM_RUN's return value (-1 on error or when interrupted). */
  result: number
  /** errno when result < 0 (EINTR after a kick). */
  errno: number
}

export class VcpuThread {
  /** The kernel's id of the thread that runs KVM_RUN (the kick's target). */
  readonly threadId: number
  private readonly worker: Worker
  private readonly control: Int32Array
  private readonly exited: Promise<void>
  private running = false
  private closed = false
  private failure?: Error
  private vcpuFd = -1

  private constructor (worker: Worker, control: Int32Array, threadId: number) {
    this.worker = worker
    this.control = control
    this.threadId = threadId
    worker.on('error', (error) => { this.failure ??= error })
    this.exited = new Promise((resolve) => {
      worker.once('exit', (code) => {
        this.failure ??= new VcpuThreadError(`the vCPU thread exited (code ${code})`)
        resolve()
      })
    })
  }

  /** A thread for the vCPU whose fd is `vcpuFd` (the spare if there is one); resolves once it can be kicked. */
  static async acquire (vcpuFd: number): Promise<VcpuThread> {
    const pending = spare
    spare = undefined
    const taken = pending != null ? await pending.catch(() => undefined) : undefined
    const thread = taken != null && taken.failure == null ? taken : await VcpuThread.start()
    thread.worker.ref()
    thread.vcpuFd = vcpuFd
    thread.closed = false
    return thread
  }

  /** Start the spare now, if there is none. */
  static prewarm (): void {
    if (spare != null) return
    const warming = VcpuThread.start().then((thread) => {
      thread.worker.unref()
      return thread
    })
    spare = warming
    // A failed warm-up is forgotten: the next acquire starts a thread itself.
    warming.catch(() => { if (spare === warming) spare = undefined })
  }

  private static async start (): Promise<VcpuThread> {
    installKickHandler()
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4))
    const koffiPath = createRequire(import.meta.url).resolve('koffi')
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { koffiPath, control: control.buffer, request: KVM_RUN, signal: constants.signals[KICK_SIGNAL] },
      // The thread holds no JS state worth a large heap.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 }
    })
    let startError: Error | undefined
    const onError = (error: Error): void => { startError = error }
    worker.once('error', onError)
    worker.once('exit', (code) => { startError ??= new VcpuThreadError(`the vCPU thread exited while starting (code ${code})`) })
    const waited = Atomics.waitAsync(control, THREAD_ID, 0, 10_000)
    const outcome = waited.async ? await Promise.race([waited.value, new Promise<'failed'>((resolve) => worker.once('exit', () => resolve('failed')))]) : waited.value
    worker.off('error', onError)
    const threadId = Atomics.load(control, THREAD_ID)
    if (threadId <= 0) {
      await worker.terminate()
      throw startError ?? new VcpuThreadError(`the vCPU thread did not start (${String(outcome)})`)
    }
    return new VcpuThread(worker, control, threadId)
  }

  /** Whether KVM_RUN is under way (between `enter` and its result). */
  get inGuest (): boolean {
    return this.running
  }

  /** Run KVM_RUN once on the thread; resolves when it returns. */
  async enter (): Promise<VcpuRunResult> {
    if (this.closed) throw new VcpuThreadError('the vCPU thread is closed')
    if (this.failure != null) throw this.failure
    if (this.running) throw new VcpuThreadError('the vCPU is already in the guest')
    this.running = true
    try {
      const done = Atomics.load(this.control, DONE)
      Atomics.store(this.control, FD, this.vcpuFd)
      Atomics.store(this.control, COMMAND, RUN)
      Atomics.notify(this.control, COMMAND)
      const waited = Atomics.waitAsync(this.control, DONE, done)
      if (waited.async) await Promise.race([waited.value, this.exited])
      if (Atomics.load(this.control, DONE) === done) throw this.failure ?? new VcpuThreadError('the vCPU thread stopped in the guest')
      return { result: Atomics.load(this.control, RESULT), errno: Atomics.load(this.control, ERRNO) }
    } finally {
      this.running = false
    }
  }

  /**
   * Give the thread up. The vCPU must be out of the guest (the caller kicks it first). It stays
   * as the spare when there is none, else it ends.
   */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.vcpuFd = -1
    if (spare == null && this.failure == null && !this.running) {
      this.worker.unref()
      spare = Promise.resolve(this)
      return
    }
    await this.end()
  }

  private async end (): Promise<void> {
    Atomics.store(this.control, COMMAND, QUIT)
    Atomics.notify(this.control, COMMAND)
    const timer = setTimeout(() => { void this.worker.terminate() }, 2_000)
    await this.exited
    clearTimeout(timer)
  }
}

/** The thread waiting for the next vCPU of this process (unreferenced: it keeps no process alive). */
let spare: Promise<VcpuThread> | undefined

/** Have a thread ready before a guest needs one (a backup that may resume a KVM guest). */
export function prewarmVcpuThread (): void {
  VcpuThread.prewarm()
}
