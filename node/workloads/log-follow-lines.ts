// What `GET /apps/logs/follow` sends the CLI, one JSON value a line: `{ node }` once the follow
// runs, `{ text }` as output comes, and one last `{ end, why, ok }`. `ok` says whether the
// output simply ended (the instance stopped) or the follow broke (cut off, node leaving or
// lost), which the CLI turns into its exit code.
import { ApiError } from '../api/index.ts'
import { LogFollowLostError, LogFollowRefusedError, type RemoteLogFollow } from './remote-log-follow.ts'

export type FollowLine =
  | { node: string }
  | { text: string }
  | { end: 'stopped' | 'leaving' | 'cut' | 'lost', why: string, ok: boolean }

/**
 * Opens the follow on the first of `peers` (in order of preference) that serves it; throws
 * ApiError, with every node's answer, when none does.
 */
export async function followLines (app: string, peers: string[], open: (peer: string) => Promise<RemoteLogFollow | undefined>): Promise<AsyncIterable<FollowLine>> {
  const failures: string[] = []
  for (const peer of peers) {
    try {
      const follow = await open(peer)
      if (follow !== undefined) return lines(app, follow)
      failures.push(`…${peer.slice(-8)} holds no log of it`)
    } catch (err) {
      failures.push(err instanceof LogFollowRefusedError ? err.message : `…${peer.slice(-8)}: ${(err as Error).message}`)
    }
  }
  throw new ApiError(502, `the logs of ${app} could not be followed: ${failures.join('; ')}`)
}

async function * lines (app: string, follow: RemoteLogFollow): AsyncGenerator<FollowLine> {
  yield { node: follow.peer }
  try {
    for await (const event of follow.follow()) {
      if ('text' in event) yield { text: event.text }
      else yield { end: event.end, why: event.why, ok: event.end === 'stopped' }
    }
  } catch (err) {
    if (!(err instanceof LogFollowLostError)) throw err
    yield { end: 'lost', why: `${app}: ${err.message}; mycelium app status ${app} shows where it runs now`, ok: false }
  }
}
