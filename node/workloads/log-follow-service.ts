// The serving end of app-log-follow/1.0.0: the node that runs an instance pushes its output to
// followers on other nodes as it is written (log-follower-session.ts serves each one).
// The access rule is the one of app-logs (log-exchange.ts): only a member that shows an
// operator grant for itself, signed by the root key, may follow. A node serves at most
// MAX_FOLLOWERS at once, so followers cannot use up its file handles and watches; a request
// that is malformed is answered with one error frame and only its stream ends.
import { lpStream } from '@libp2p/utils'
import type { Stream, Connection } from '@libp2p/interface'
import { operatorGrantAdmits } from '../../membership/index.ts'
import type { MyceliumHost } from '../host/index.ts'
import type { Logger } from '../log/index.ts'
import { decodeLogRequest, LogRequestError } from './log-exchange.ts'
import { encodeNodeFrame, logFollowProtocol, type NodeFrame } from './log-follow-messages.ts'
import { LogFollowerSession, DEFAULT_FOLLOW_LIMITS, type FollowLimits } from './log-follower-session.ts'

export const MAX_FOLLOWERS = 16
/** per connection: one node following a few applications' stdout and stderr */
const MAX_STREAMS_PER_CONNECTION = 8
const REQUEST_MS = 10_000
/** how long a leaving node gives its followers to hear why */
const LEAVE_MS = 3_000

/** Where an application's logs are on this node, and whether its instance runs now. */
/** `instance`: which run of the application writes the files now (bundle and start time): one replaced in place writes to the same files. */
export interface FollowableLog { logDir: string, running: boolean, instance?: string }

export interface LogFollowServiceOptions {
  host: MyceliumHost
  networkId: string
  rootPublicKey: Uint8Array
  log: Logger
  logOf: (app: string) => FollowableLog | undefined
  maxFollowers?: number
  limits?: Partial<FollowLimits>
}

export class LogFollowService {
  private readonly o: LogFollowServiceOptions
  private readonly protocol: string
  private readonly sessions = new Map<LogFollowerSession, Promise<void>>()
  /** the instance each session follows: a replacement in place ends it like a stop */
  private readonly followed = new Map<LogFollowerSession, string | undefined>()
  private leaving = false

  constructor (options: LogFollowServiceOptions) {
    this.o = options
    this.protocol = logFollowProtocol(options.networkId)
  }

  get followers (): number {
    return this.sessions.size
  }

  async start (): Promise<void> {
    await this.o.host.handle(this.protocol, (stream, connection) => { void this.serve(stream, connection) }, { maxInboundStreams: MAX_STREAMS_PER_CONNECTION })
  }

  /** The node leaves: every follower hears so (after what its files still held), briefly. */
  async stop (): Promise<void> {
    this.leaving = true
    await this.o.host.unhandle(this.protocol).catch(() => {})
    for (const session of this.sessions.keys()) session.end('leaving', `${session.app}: the node running it is leaving the network (its instance will run elsewhere)`)
    await Promise.race([Promise.all(this.sessions.values()), new Promise(resolve => setTimeout(resolve, LEAVE_MS).unref())])
  }

  /**
   * An instance here changed: the followers of one that no longer runs are told it stopped,
   * also when another instance of the application took its place (a rolling upgrade replaces in
   * place): the new one starts its own files, and the follower goes on with it as with a move.
   */
  instanceChanged (app: string): void {
    const now = this.o.logOf(app)
    for (const session of this.sessions.keys()) {
      if (session.app !== app) continue
      if (now?.running === true && this.followed.get(session) === now.instance) continue
      session.end('stopped', `${app} stopped on the node that ran it`)
    }
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: 4096 })
    const answer = async (frame: NodeFrame): Promise<void> => {
      const signal = AbortSignal.timeout(REQUEST_MS)
      await lp.write(encodeNodeFrame(frame), { signal })
      await stream.close({ signal })
    }
    try {
      let req
      try {
        req = decodeLogRequest((await lp.read({ signal: AbortSignal.timeout(REQUEST_MS) })).subarray())
      } catch (err) {
        if (!(err instanceof LogRequestError)) throw err
        await answer({ error: `malformed follow request: ${err.message}` })
        return
      }
      const asker = connection.remotePeer.toString()
      if (!operatorGrantAdmits(req.grant, { rootPublicKey: this.o.rootPublicKey, operator: asker, at: Date.now() })) {
        await answer({ refused: 'the request carries no operator grant for its sender' })
        return
      }
      if (this.leaving) { await answer({ refused: 'this node is leaving the network' }); return }
      if (this.sessions.size >= (this.o.maxFollowers ?? MAX_FOLLOWERS)) {
        await answer({ refused: `this node serves ${this.sessions.size} log followers already; try again later` })
        return
      }
      const where = this.o.logOf(req.app)
      if (where === undefined) { await answer({ missing: true }); return }
      const session = new LogFollowerSession({ stream, lp, app: req.app, logDir: where.logDir, logStream: req.stream, tailBytes: req.tail, log: this.o.log, limits: { ...DEFAULT_FOLLOW_LIMITS, ...this.o.limits } })
      // an instance that is not running (a finished job): its output so far, then the end
      if (!where.running) session.end('stopped', `${req.app} is not running on the node that ran it`)
      const served = session.run()
      this.sessions.set(session, served)
      this.followed.set(session, where.instance)
      this.o.log.debug({ app: req.app, follower: asker, followers: this.sessions.size }, 'log follower joined')
      try {
        await served
      } finally {
        this.sessions.delete(session)
        this.followed.delete(session)
        this.o.log.debug({ app: req.app, follower: asker, followers: this.sessions.size }, 'log follower done')
      }
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, 'log follow request not served')
      stream.abort(err as Error)
    }
  }
}
