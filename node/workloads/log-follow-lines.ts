// What `GET /apps/logs/follow` sends the CLI, one JSON value a line: `{ node, of }` once the
// follow runs (of: how many instances run), `{ text }` as output comes, `{ moved }` when it
// goes on with another instance, and one last `{ end, why, ok }`. `ok` says whether the output
// simply ended (the instance stopped, or the application was removed) or the follow broke (cut
// off, node leaving or lost), which the CLI turns into its exit code.
//
// The follow is of the application, not of one process: when the instance followed stops, its
// node leaves or is lost, the follow looks where the application's instances run now (as `app
// status` and `app logs` find them) and goes on with one of them, until the command is
// interrupted or the application is removed. Pinned to a node (`--node`), it ends instead when
// the instance leaves that node; a follower cut off for falling behind ends too (following on
// would only fall behind again), and so does one every instance refuses (no authority to read
// another node's logs: a follow of this node's own instance needs none).
import { setTimeout as sleep } from 'node:timers/promises'
import { ApiError } from '../api/index.ts'
import { LogFollowLostError, LogFollowRefusedError, type FollowEvent } from './remote-log-follow.ts'

export type FollowLine =
  | { node: string, of: number }
  | { moved: string }
  | { text: string }
  | { end: 'stopped' | 'leaving' | 'cut' | 'lost' | 'refused', why: string, ok: boolean }

/** An instance that runs the application: its node, and when it reported it (this node's: when it started). */
export interface RunningInstance { peer: string, since: number }

export interface ServiceFollowOptions {
  app: string
  /** `--node`: only the instance on that node */
  pinned: boolean
  /** the instances that run now, best first */
  locate: () => Promise<RunningInstance[]>
  /** the output of the instance on `peer`; undefined when that node holds none */
  open: (peer: string) => Promise<AsyncIterable<FollowEvent> | undefined>
  /** does the plan still want instances of the application */
  planned: () => Promise<boolean>
  signal: AbortSignal
  /** how often to look for an instance while none runs */
  retryMs?: number
}

const RETRY_MS = 500

function short (peer: string): string {
  return `…${peer.slice(-8)}`
}

/**
 * Opens the follow on the first of `instances` (in order of preference) that serves it;
 * throws ApiError, with every node's answer, when none does.
 */
export async function followLines (o: ServiceFollowOptions, instances: RunningInstance[]): Promise<AsyncIterable<FollowLine>> {
  const failures: string[] = []
  for (const { peer, since } of instances) {
    try {
      const output = await o.open(peer)
      if (output !== undefined) return lines(o, { peer, since, output }, instances.length)
      failures.push(`${short(peer)} holds no log of it`)
    } catch (err) {
      failures.push(err instanceof LogFollowRefusedError ? err.message : `${short(peer)}: ${(err as Error).message}`)
    }
  }
  throw new ApiError(502, `the logs of ${o.app} could not be followed: ${failures.join('; ')}`)
}

interface Attached extends RunningInstance { output: AsyncIterable<FollowEvent> }

async function * lines (o: ServiceFollowOptions, first: Attached, of: number): AsyncGenerator<FollowLine> {
  let current: Attached | undefined = first
  yield { node: first.peer, of }
  while (current !== undefined) {
    let end: Extract<FollowLine, { end: unknown }> | undefined
    try {
      for await (const event of current.output) {
        if ('text' in event) yield { text: event.text }
        else end = { end: event.end, why: event.why, ok: event.end === 'stopped' }
      }
    } catch (err) {
      if (!(err instanceof LogFollowLostError)) throw err
      end = { end: 'lost', why: `${o.app}: ${err.message}`, ok: false }
    }
    if (o.signal.aborted) return
    end ??= { end: 'lost', why: `${o.app}: the follow of ${short(current.peer)} ended without saying why`, ok: false }
    if (o.pinned || end.end === 'cut') {
      yield end.end === 'lost' ? { ...end, why: `${end.why}; mycelium app status ${o.app} shows where it runs now` } : end
      return
    }
    const found = await next(o, current)
    if (found === undefined || 'refused' in found) {
      if (o.signal.aborted) return
      yield found === undefined
        ? { end: 'stopped', why: `${o.app} stopped on the node that ran it, and its plan wants no instance now`, ok: true }
        : { end: 'refused', why: `${o.app} runs elsewhere now, but ${found.refused}`, ok: false }
      return
    }
    current = found
    yield { moved: current.peer }
  }
}

/**
 * The instance to go on with, once the followed one is gone: the first that serves, looked for
 * again every RETRY_MS while none does (a new one is being started). The node just left counts
 * only with a report newer than the one the follow went by (an instance started there again,
 * or the node still says it runs one). Undefined once the plan wants no instance, or the
 * command has gone.
 */
async function next (o: ServiceFollowOptions, left: RunningInstance): Promise<Attached | { refused: string } | undefined> {
  while (!o.signal.aborted) {
    if (!await o.planned()) return undefined
    const candidates = (await o.locate()).filter(({ peer, since }) => peer !== left.peer || since > left.since)
    const refusals: string[] = []
    for (const { peer, since } of candidates) {
      try {
        const output = await o.open(peer)
        if (output !== undefined) return { peer, since, output }
      } catch (err) {
        // unreachable: another instance, or the next look; refused by every one: no use looking again
        if (err instanceof LogFollowRefusedError) refusals.push(err.message)
      }
    }
    if (candidates.length > 0 && refusals.length === candidates.length) return { refused: refusals[0] }
    await sleep(o.retryMs ?? RETRY_MS, undefined, { signal: o.signal }).catch(() => {})
  }
  return undefined
}
