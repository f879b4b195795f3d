// The output of this node's own instance as a follow of the whole service sees it (the same
// events a remote node's stream gives, log-follow-lines.ts): its files followed as they are
// written (follow-log.ts, across rotations), until the instance stops or is replaced, then
// what the files hold by then, then `stopped`. The reading waits for each piece to be taken,
// so a slow reader holds it back instead of filling memory.
import { followLog } from '../../workloads/runner/follow-log.ts'
import type { LogStream } from '../../workloads/runner/rotating-log.ts'
import type { FollowEvent } from './remote-log-follow.ts'

/** how often the follow looks whether the instance still runs */
const RUNNING_CHECK_MS = 250

export async function * localLogOutput (options: { app: string, logDir: string, stream: LogStream, tailBytes: number, stillRuns: () => boolean, signal: AbortSignal }): AsyncGenerator<FollowEvent> {
  const { app, signal } = options
  const until = new AbortController()
  const left = new AbortController()
  let piece: string | undefined
  let taken: (() => void) | undefined
  let wake: (() => void) | undefined
  let done = false
  let failure: Error | undefined
  const notify = (): void => { const w = wake; wake = undefined; w?.() }
  const watch = setInterval(() => { if (!options.stillRuns()) until.abort() }, RUNNING_CHECK_MS)
  const onAbort = (): void => { notify() }
  signal.addEventListener('abort', onAbort, { once: true })
  const reading = followLog(options.logDir, options.stream, async (text) => {
    piece = text
    notify()
    await new Promise<void>(resolve => { taken = resolve })
  }, AbortSignal.any([signal, left.signal]), { tailBytes: options.tailBytes, until: until.signal })
    .then(() => { done = true }, (err: Error) => { failure = err })
    .finally(notify)
  try {
    for (;;) {
      if (piece !== undefined) {
        const text = piece
        piece = undefined
        yield { text }
        const resume = taken
        taken = undefined
        resume?.()
        continue
      }
      if (signal.aborted) return
      if (failure !== undefined) throw failure
      if (done) {
        yield { end: 'stopped', why: `${app} stopped on the node that ran it` }
        return
      }
      await new Promise<void>(resolve => { wake = resolve })
    }
  } finally {
    clearInterval(watch)
    signal.removeEventListener('abort', onAbort)
    left.abort()
    taken?.()
    await reading
  }
}
