// app-log-follow/1.0.0 on real libp2p hosts in one process, over real log files: a follower
// with an operator grant gets each line as it is written, then the end when the instance stops
// or the node leaves; a follower without a grant, one over the node's limit and one sending a
// malformed request are each refused with a clear frame, and the node goes on serving; a raw
// follower that never reads, or reads nothing while output flows, or sends garbage credit, is
// cut off and the node holds no follow for it; a node that goes silent mid-follow (its
// connection open) ends the follow with LogFollowLostError. Limits are short here; the daemons use 10 s
// and 20 s (apps-daemon.test.ts cuts off a non-reading CLI with those).
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { lpStream } from '@libp2p/utils'
import { pino } from 'pino'
import { encodeCanonical, getPublicKey, randomSecretKey } from '../../crypto/index.ts'
import { encodeOperatorGrant, signOperatorGrant } from '../../membership/index.ts'
import { RotatingLog } from '../../workloads/runner/rotating-log.ts'
import type { MyceliumHost } from '../../node/host/index.ts'
import { LogFollowService, type FollowableLog } from '../../node/workloads/log-follow-service.ts'
import { decodeNodeFrame, encodeNodeFrame, logFollowProtocol, type NodeFrame } from '../../node/workloads/log-follow-messages.ts'
import { openRemoteLogFollow, LogFollowRefusedError, LogFollowLostError, type FollowEvent } from '../../node/workloads/remote-log-follow.ts'
import { waitFor } from '../harness/index.ts'

const NETWORK = 'log-follow-test'
const PROTOCOL = logFollowProtocol(NETWORK)
const root = randomSecretKey()
const log = pino({ level: 'silent' })

async function host (): Promise<Libp2p> {
  return await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
}

function grantFor (peer: Libp2p, secret = root): Uint8Array {
  return encodeOperatorGrant(signOperatorGrant(secret, { operator: peer.peerId.toString(), issuedAt: Date.now(), ttlMs: 60_000 }))
}

let node: Libp2p
let follower: Libp2p
let service: LogFollowService
let dir: string
let out: RotatingLog
const logs = new Map<string, FollowableLog>()

beforeAll(async () => {
  node = await host()
  follower = await host()
  await follower.dial(node.getMultiaddrs()[0])
})

afterAll(async () => {
  await follower.stop()
  await node.stop()
})

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'myc-follow-'))
  out = new RotatingLog(dir, 'stdout', 128 * 1024, (err) => { throw err })
  logs.set('web', { logDir: dir, running: true })
  service = new LogFollowService({
    host: node as unknown as MyceliumHost,
    networkId: NETWORK,
    rootPublicKey: getPublicKey(root),
    log,
    logOf: (app) => logs.get(app),
    maxFollowers: 2,
    limits: { queueBytes: 64 * 1024, holdMs: 1_000, silenceMs: 1_500, beatMs: 300 }
  })
  await service.start()
})

afterEach(async () => {
  await service.stop()
  out.close()
  rmSync(dir, { recursive: true, force: true })
})

async function open (grant = grantFor(follower), app = 'web'): ReturnType<typeof openRemoteLogFollow> {
  return await openRemoteLogFollow({ host: follower as unknown as MyceliumHost, protocol: PROTOCOL, peer: node.peerId.toString(), request: { app, stream: 'stdout', tail: 0, grant }, signal: new AbortController().signal })
}

/** A raw stream: the request bytes as given, then whatever the test does. */
async function raw (request: Uint8Array): Promise<{ lp: ReturnType<typeof lpStream>, first: NodeFrame, abort: () => void }> {
  const stream = await follower.dialProtocol(node.peerId, PROTOCOL)
  const lp = lpStream(stream, { maxDataLength: 128 * 1024 })
  await lp.write(request)
  return { lp, first: decodeNodeFrame((await lp.read({ signal: AbortSignal.timeout(5_000) })).subarray()), abort: () => { stream.abort(new Error('test done')) } }
}

async function collect (events: AsyncGenerator<FollowEvent>, into: string[]): Promise<FollowEvent | undefined> {
  for await (const e of events) {
    if ('text' in e) into.push(e.text)
    else return e
  }
}

describe('following an instance\'s log over a libp2p stream', () => {
  it('pushes each line as written, in order across rotations, then says the instance stopped', async () => {
    const follow = (await open())!
    const texts: string[] = []
    const ended = collect(follow.follow(), texts)
    await waitFor(() => service.followers === 1, { timeoutMs: 2_000 })
    out.write(Buffer.from('first\n'))
    await waitFor(() => texts.join('') === 'first\n', { timeoutMs: 2_000, intervalMs: 5, what: 'the first line' })
    // 400 lines of 1 KB through files of 128 KiB: rotated three times (all four files kept)
    const lines = Array.from({ length: 400 }, (_, i) => `line ${i} ${'x'.repeat(1000)}\n`)
    for (const line of lines) out.write(Buffer.from(line))
    await waitFor(() => texts.join('').endsWith(lines[399]), { timeoutMs: 5_000, what: 'the last line' })
    out.write(Buffer.from('last words\n'))
    logs.set('web', { logDir: dir, running: false })
    service.instanceChanged('web')
    expect(await ended).toEqual({ end: 'stopped', why: 'web stopped on the node that ran it' })
    expect(texts.join('')).toBe(`first\n${lines.join('')}last words\n`)
    await waitFor(() => service.followers === 0, { timeoutMs: 2_000 })
  })

  it('ends a follow when another instance takes the followed one\'s place (a replacement in place writes to the same files), not when the same one changes', async () => {
    logs.set('web', { logDir: dir, running: true, instance: 'old@1' })
    const follow = (await open())!
    const texts: string[] = []
    const ended = collect(follow.follow(), texts)
    await waitFor(() => service.followers === 1, { timeoutMs: 2_000 })
    // a change of the same instance (its health, say) leaves the follow running
    service.instanceChanged('web')
    out.write(Buffer.from('still here\n'))
    await waitFor(() => texts.join('').endsWith('still here\n'), { timeoutMs: 2_000, intervalMs: 5, what: 'a line after a change of the same instance' })
    expect(service.followers).toBe(1)
    logs.set('web', { logDir: dir, running: true, instance: 'new@2' })
    service.instanceChanged('web')
    expect(await ended).toEqual({ end: 'stopped', why: 'web stopped on the node that ran it' })
    await waitFor(() => service.followers === 0, { timeoutMs: 2_000 })
  })

  it('tells its followers when the node leaves', async () => {
    const follow = (await open())!
    const ended = collect(follow.follow(), [])
    await waitFor(() => service.followers === 1, { timeoutMs: 2_000 })
    await service.stop()
    expect(await ended).toMatchObject({ end: 'leaving' })
  })

  it('refuses a follower without an operator grant, a grant for another peer, and one beyond the node\'s limit', async () => {
    await expect(open(grantFor(follower, randomSecretKey()))).rejects.toThrow(/refused to be followed: the request carries no operator grant for its sender/)
    await expect(open(grantFor(node))).rejects.toBeInstanceOf(LogFollowRefusedError)
    expect(await open(grantFor(follower), 'nothing-here')).toBeUndefined()
    const a = (await open())!
    const b = (await open())!
    const runs = [collect(a.follow(), []), collect(b.follow(), [])]
    await waitFor(() => service.followers === 2, { timeoutMs: 2_000 })
    await expect(open()).rejects.toThrow(/serves 2 log followers already/)
    await service.stop()
    await Promise.all(runs)
  })

  it('answers a malformed request with an error frame and goes on serving', async () => {
    const garbage = [new Uint8Array([0xff, 0x00, 0x13]), encodeCanonical({ app: '../etc', stream: 'stdout', tail: 0, grant: grantFor(follower) }), encodeCanonical({ app: 'web', stream: 'stdin', tail: 0, grant: grantFor(follower) }), encodeCanonical([1, 2, 3])]
    for (const bytes of garbage) {
      const r = await raw(bytes)
      expect(r.first).toMatchObject({ error: expect.stringMatching(/^malformed follow request: /) })
      r.abort()
    }
    const follow = (await open())!
    const texts: string[] = []
    void collect(follow.follow(), texts)
    out.write(Buffer.from('still here\n'))
    await waitFor(() => texts.join('') === 'still here\n', { timeoutMs: 2_000, what: 'a follow after the garbage' })
  })

  it('cuts off a follower that never reads or answers, and one that takes no output while it flows', async () => {
    // silent: answers no beat
    const silent = await raw(encodeCanonical({ app: 'web', stream: 'stdout', tail: 0, grant: grantFor(follower) }))
    expect(silent.first).toEqual({ following: true })
    await waitFor(() => service.followers === 1, { timeoutMs: 2_000 })
    await waitFor(() => service.followers === 0, { timeoutMs: 5_000, what: 'the silent follower cut off' })
    const frames: NodeFrame[] = []
    for (;;) {
      const frame = decodeNodeFrame((await silent.lp.read({ signal: AbortSignal.timeout(2_000) })).subarray())
      frames.push(frame)
      if ('end' in frame) break
    }
    expect(frames.at(-1)).toEqual({ end: 'cut', why: 'web: this follower was cut off for answering nothing for 1.5 s' })
    silent.abort()

    // takes no output: answers beats (credit 0) but grants nothing while 1 MiB is written
    const greedy = await raw(encodeCanonical({ app: 'web', stream: 'stdout', tail: 0, grant: grantFor(follower) }))
    expect(greedy.first).toEqual({ following: true })
    let last: NodeFrame | undefined
    const reading = (async () => {
      for (;;) {
        last = decodeNodeFrame((await greedy.lp.read()).subarray())
        if ('end' in last) return
        if ('beat' in last) await greedy.lp.write(encodeCanonical({ credit: 0 }))
      }
    })()
    for (let i = 0; i < 1024; i++) out.write(Buffer.from(`flood ${i} ${'x'.repeat(1000)}\n`))
    await reading
    expect(last).toEqual({ end: 'cut', why: 'web: this follower was cut off for falling behind (64 KiB of output waited 1 s for it to read)' })
    expect(service.followers).toBe(0)
    greedy.abort()
  })

  it('cuts off a follower that sends garbage after its request, and one granting credit beyond its window', async () => {
    for (const bad of [new Uint8Array([1, 2, 3, 4]), encodeCanonical({ credit: 300 * 1024 }), encodeCanonical({ credit: 100_000, more: true })]) {
      const r = await raw(encodeCanonical({ app: 'web', stream: 'stdout', tail: 0, grant: grantFor(follower) }))
      await r.lp.write(bad)
      let frame: NodeFrame
      do frame = decodeNodeFrame((await r.lp.read({ signal: AbortSignal.timeout(3_000) })).subarray())
      while (!('end' in frame))
      expect(frame).toMatchObject({ end: 'cut', why: expect.stringMatching(/^web: this follower was cut off for breaking the follow protocol: /) })
      r.abort()
    }
    // all granted together they exceed the window, each alone does not
    const r = await raw(encodeCanonical({ app: 'web', stream: 'stdout', tail: 0, grant: grantFor(follower) }))
    await r.lp.write(encodeCanonical({ credit: 10 }))
    let frame: NodeFrame
    do frame = decodeNodeFrame((await r.lp.read({ signal: AbortSignal.timeout(3_000) })).subarray())
    while (!('end' in frame))
    expect(frame).toMatchObject({ end: 'cut', why: expect.stringMatching(/credit beyond the 262144-byte window/) })
    r.abort()
    await waitFor(() => service.followers === 0, { timeoutMs: 2_000 })
  })

  it('gives up on a node that goes silent mid-follow, its connection open, with one clear error', async () => {
    // a node that says `following`, then nothing (frozen), on a protocol of its own
    const frozen = `${PROTOCOL}-frozen`
    await node.handle(frozen, async (stream) => {
      const lp = lpStream(stream)
      await lp.read()
      await lp.write(encodeNodeFrame({ following: true }))
      await lp.write(encodeNodeFrame({ text: 'last words\n' }))
    })
    try {
      const follow = (await openRemoteLogFollow({ host: follower as unknown as MyceliumHost, protocol: frozen, peer: node.peerId.toString(), request: { app: 'web', stream: 'stdout', tail: 0, grant: grantFor(follower) }, signal: new AbortController().signal, silenceMs: 1_000 }))!
      const texts: string[] = []
      const t0 = Date.now()
      const err = await collect(follow.follow(), texts).then(() => undefined, (e: Error) => e)
      expect(texts).toEqual(['last words\n'])
      expect(err).toBeInstanceOf(LogFollowLostError)
      expect(err!.message).toMatch(/^the node …\w{8} running it sent nothing for 1 s \(it is down or cut off\)$/)
      expect(Date.now() - t0).toBeLessThan(5_000)
    } finally {
      await node.unhandle(frozen)
    }
  })
})
