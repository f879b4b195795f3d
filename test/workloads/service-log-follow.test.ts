// `app logs NAME -f` follows the application, not one process (log-follow-lines.ts), on real
// libp2p hosts in one process over real log files: two serving nodes (app-log-follow/1.0.0)
// and the follower's own node, which runs an instance of its own at one point. The follow goes
// on with the instance that runs now when the one followed stops, its node leaves or its
// connection is lost, says so once per move, waits while none runs, and ends (ok) once the plan
// wants no instance; pinned to a node it ends when the instance leaves that node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { pino } from 'pino'
import { getPublicKey, randomSecretKey } from '../../crypto/index.ts'
import { encodeOperatorGrant, signOperatorGrant } from '../../membership/index.ts'
import { RotatingLog } from '../../workloads/runner/rotating-log.ts'
import type { MyceliumHost } from '../../node/host/index.ts'
import { LogFollowService, type FollowableLog } from '../../node/workloads/log-follow-service.ts'
import { logFollowProtocol } from '../../node/workloads/log-follow-messages.ts'
import { openRemoteLogFollow, type FollowEvent } from '../../node/workloads/remote-log-follow.ts'
import { followLines, type FollowLine, type RunningInstance } from '../../node/workloads/log-follow-lines.ts'
import { localLogOutput } from '../../node/workloads/local-log-output.ts'
import { waitFor } from '../harness/index.ts'

const NETWORK = 'service-follow-test'
const PROTOCOL = logFollowProtocol(NETWORK)
const root = randomSecretKey()
const log = pino({ level: 'silent' })

async function host (): Promise<Libp2p> {
  return await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
}

/** A node that runs an instance of `web`: its log files and its serving end of the follow. */
interface Serving { host: Libp2p, peer: string, out: RotatingLog, logs: Map<string, FollowableLog>, service: LogFollowService, dir: string }

async function serving (): Promise<Serving> {
  const h = await host()
  const dir = mkdtempSync(join(tmpdir(), 'myc-sfollow-'))
  const logs = new Map<string, FollowableLog>()
  const service = new LogFollowService({ host: h as unknown as MyceliumHost, networkId: NETWORK, rootPublicKey: getPublicKey(root), log, logOf: (app) => logs.get(app) })
  await service.start()
  return { host: h, peer: h.peerId.toString(), out: new RotatingLog(dir, 'stdout', 1024 * 1024, (err) => { throw err }), logs, service, dir }
}

let a: Serving
let b: Serving
let follower: Libp2p
const self = 'the-follower-itself'

beforeAll(async () => {
  a = await serving()
  b = await serving()
  follower = await host()
  await follower.dial(a.host.getMultiaddrs()[0])
  await follower.dial(b.host.getMultiaddrs()[0])
})

afterAll(async () => {
  for (const s of [a, b]) { s.out.close(); await s.service.stop().catch(() => {}); await s.host.stop() }
  await follower.stop()
})

/** What the daemon's route gives the follow: where `web` runs (as the test says), the output of each instance, whether it is planned. */
function world (pinned: boolean): { where: RunningInstance[], planned: boolean, local?: { dir: string, running: boolean }, run: (lines: FollowLine[]) => Promise<void>, abort: () => void } {
  const controller = new AbortController()
  const w = {
    where: [] as RunningInstance[],
    planned: true,
    local: undefined as { dir: string, running: boolean } | undefined,
    abort: () => { controller.abort() },
    run: async (into: FollowLine[]): Promise<void> => {
      const grant = encodeOperatorGrant(signOperatorGrant(root, { operator: follower.peerId.toString(), issuedAt: Date.now(), ttlMs: 60_000 }))
      const open = async (peer: string): Promise<AsyncIterable<FollowEvent> | undefined> => {
        if (peer === self) {
          const here = w.local!
          return localLogOutput({ app: 'web', logDir: here.dir, stream: 'stdout', tailBytes: 0, signal: controller.signal, stillRuns: () => here.running })
        }
        const f = await openRemoteLogFollow({ host: follower as unknown as MyceliumHost, protocol: PROTOCOL, peer, request: { app: 'web', stream: 'stdout', tail: 0, grant }, signal: controller.signal })
        return f?.follow()
      }
      const lines = await followLines({ app: 'web', pinned, locate: async () => w.where, open, planned: async () => w.planned, signal: controller.signal, retryMs: 50 }, w.where)
      for await (const line of lines) into.push(line)
    }
  }
  return w
}

function texts (lines: FollowLine[]): string {
  return lines.map(l => 'text' in l ? l.text : '').join('')
}

/** Starts (or ends) the instance of `web` on a serving node. */
function runs (s: Serving, running: boolean): void {
  s.logs.set('web', { logDir: s.dir, running })
  if (!running) s.service.instanceChanged('web')
}

describe('app logs -f follows the application from instance to instance', () => {
  it('goes on with the instance that runs now when the one followed stops, its node leaves or runs it here, and ends once the plan wants none', async () => {
    const w = world(false)
    runs(a, true)
    w.where = [{ peer: a.peer, since: Date.now() }]
    const got: FollowLine[] = []
    const done = w.run(got)
    await waitFor(() => a.service.followers === 1, { timeoutMs: 5_000, what: 'the follow on a' })
    expect(got[0]).toEqual({ node: a.peer, of: 1 })
    a.out.write(Buffer.from('a says 1\n'))
    await waitFor(() => texts(got).includes('a says 1\n'), { timeoutMs: 5_000, what: 'a line of a' })

    // the instance on a stops and is started on b: the follow moves there, once, and says so
    a.out.write(Buffer.from('a says its last\n'))
    runs(b, true)
    w.where = [{ peer: b.peer, since: Date.now() }]
    runs(a, false)
    await waitFor(() => b.service.followers === 1, { timeoutMs: 5_000, what: 'the follow moved to b' })
    b.out.write(Buffer.from('b says 1\n'))
    await waitFor(() => texts(got).includes('b says 1\n'), { timeoutMs: 5_000, what: 'a line of b' })
    expect(texts(got)).toBe('a says 1\na says its last\nb says 1\n')
    expect(got.filter(l => 'moved' in l)).toEqual([{ moved: b.peer }])
    expect(got.some(l => 'end' in l)).toBe(false)

    // b leaves the network; for a while no instance runs; then one starts on the follower's own node
    w.where = []
    await b.service.stop()
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(got.filter(l => 'moved' in l)).toHaveLength(1)
    const here = { dir: mkdtempSync(join(tmpdir(), 'myc-sfollow-here-')), running: true }
    const mine = new RotatingLog(here.dir, 'stdout', 1024 * 1024, (err) => { throw err })
    w.local = here
    w.where = [{ peer: self, since: Date.now() }]
    await waitFor(() => got.some(l => 'moved' in l && l.moved === self), { timeoutMs: 5_000, what: 'the follow moved to this node' })
    mine.write(Buffer.from('here says 1\n'))
    await waitFor(() => texts(got).includes('here says 1\n'), { timeoutMs: 5_000, what: 'a line of this node\'s instance' })

    // the application is removed: its last words, then the end, ok
    mine.write(Buffer.from('here says goodbye\n'))
    w.planned = false
    w.where = []
    here.running = false
    await done
    mine.close()
    expect(texts(got)).toBe('a says 1\na says its last\nb says 1\nhere says 1\nhere says goodbye\n')
    expect(got.at(-1)).toEqual({ end: 'stopped', why: 'web stopped on the node that ran it, and its plan wants no instance now', ok: true })
  })

  it('moves on when the connection to the followed node is lost, and not back to that node while its report is older than the loss', async () => {
    b = await serving()
    await follower.dial(b.host.getMultiaddrs()[0])
    const w = world(false)
    runs(a, true)
    runs(b, true)
    const before = Date.now() - 1
    w.where = [{ peer: b.peer, since: before }, { peer: a.peer, since: before }]
    const got: FollowLine[] = []
    const done = w.run(got)
    await waitFor(() => b.service.followers === 1, { timeoutMs: 5_000, what: 'the follow on b' })
    expect(got[0]).toEqual({ node: b.peer, of: 2 })
    await follower.hangUp(b.host.peerId)
    await waitFor(() => got.some(l => 'moved' in l), { timeoutMs: 5_000, what: 'the follow moved' })
    expect(got.find(l => 'moved' in l)).toEqual({ moved: a.peer })
    a.out.write(Buffer.from('a after the loss\n'))
    await waitFor(() => texts(got).includes('a after the loss\n'), { timeoutMs: 5_000, what: 'a line of a' })
    w.abort()
    await done
    expect(got.some(l => 'end' in l)).toBe(false)
  })

  it('pinned to a node, ends when the instance leaves it instead of moving', async () => {
    const w = world(true)
    runs(a, true)
    w.where = [{ peer: a.peer, since: Date.now() }]
    const got: FollowLine[] = []
    const done = w.run(got)
    await waitFor(() => got.length > 0, { timeoutMs: 5_000, what: 'the follow on a' })
    w.where = [{ peer: b.peer, since: Date.now() }]
    runs(a, false)
    await done
    expect(got.filter(l => 'moved' in l)).toEqual([])
    expect(got.at(-1)).toEqual({ end: 'stopped', why: 'web stopped on the node that ran it', ok: true })
  })
})
