// The /app/ gateway's streams on real libp2p hosts in one process, with a real HTTP instance:
// bodies several times the old whole-message caps cross the mesh both ways, with what either
// end holds bounded by the credit window (asserted from the frame counters, not from timing);
// the answer starts before the instance has finished it; a member that breaks the frame
// protocol loses its stream and nothing else; a client that leaves aborts the instance's
// request; an instance that dies mid-answer leaves a truncated answer and a working gateway.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createServer, request, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { lpStream } from '@libp2p/utils'
import { pino } from 'pino'
import { AppGateway, gatewayProtocol } from '../../node/workloads/app-gateway.ts'
import { encodeFrame, encodeHead, WINDOW_BYTES, type GatewayFrame } from '../../node/workloads/gateway-messages.ts'
import type { ChannelCounters } from '../../node/workloads/gateway-channel.ts'

const NETWORK = 'gateway-stream-test'
const MiB = 1024 * 1024
const log = pino({ level: 'silent' })

/** Deterministic bytes: block i of 64 KiB is filled with i mod 251. */
function block (i: number): Buffer {
  return Buffer.alloc(64 * 1024, i % 251)
}

function digestOf (bytes: number): string {
  const h = createHash('sha256')
  for (let i = 0; i * 64 * 1024 < bytes; i++) h.update(block(i))
  return h.digest('hex')
}

interface StreamRecord { end: 'gateway' | 'instance', counters: ChannelCounters, error?: Error }

/** What the instance saw: requests that ended before their end (their client went away). */
const instance = {
  server: undefined as Server | undefined,
  cut: [] as string[],
  /** the download route is blocked writing (its reader stopped pulling) */
  stalled: false,
  written: 0,
  uploaded: 0,
  release: undefined as (() => void) | undefined
}

async function writeBlocks (res: ServerResponse, bytes: number): Promise<void> {
  for (let i = 0; i * 64 * 1024 < bytes; i++) {
    instance.written += 64 * 1024
    if (!res.write(block(i))) {
      instance.stalled = true
      await Promise.race([once(res, 'drain'), once(res, 'close')])
      instance.stalled = false
      if (res.destroyed) return
    }
  }
  res.end()
}

async function route (req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x')
  req.on('close', () => { if (!req.complete) instance.cut.push(`request ${url.pathname}`) })
  res.on('close', () => { if (!res.writableFinished) instance.cut.push(`answer ${url.pathname}`) })
  if (url.pathname === '/download') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    await writeBlocks(res, Number(url.searchParams.get('mib')) * MiB)
  } else if (url.pathname === '/upload') {
    const h = createHash('sha256')
    let size = 0
    try {
      for await (const chunk of req) { h.update(chunk as Buffer); size += (chunk as Buffer).length; instance.uploaded = size }
    } catch { return }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ size, sha256: h.digest('hex') }))
  } else if (url.pathname === '/gated') {
    // the rest of the answer waits for the client to have seen its first bytes
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('first;')
    await new Promise<void>(resolve => { instance.release = resolve })
    res.end('rest')
  } else if (url.pathname === '/hold') {
    // takes the request and never reads it nor answers
  } else if (url.pathname === '/die') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    res.write(block(0))
    res.write(block(1), () => { res.socket?.destroy() })
  } else {
    res.end('ok')
  }
}

let gatewayHost: Libp2p
let instanceHost: Libp2p
let rogueHost: Libp2p
let gateway: AppGateway
let instanceGateway: AppGateway
let front: Server
let frontPort = 0
let endpoints: () => string[]
const streams: StreamRecord[] = []

async function host (): Promise<Libp2p> {
  return await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
}

beforeAll(async () => {
  instance.server = createServer((req, res) => { void route(req, res) })
  instance.server.listen(0, '127.0.0.1')
  await once(instance.server, 'listening')
  const port = (instance.server.address() as AddressInfo).port
  ;[gatewayHost, instanceHost, rogueHost] = [await host(), await host(), await host()]
  await gatewayHost.dial(instanceHost.getMultiaddrs())
  await gatewayHost.dial(rogueHost.getMultiaddrs())
  await rogueHost.dial(instanceHost.getMultiaddrs())
  const record = (end: 'gateway' | 'instance', counters: ChannelCounters, error?: Error): void => { streams.push({ end, counters: { ...counters }, ...(error === undefined ? {} : { error }) }) }
  instanceGateway = new AppGateway({ host: instanceHost, networkId: NETWORK, self: instanceHost.peerId.toString(), log, localPort: () => port, endpoints: () => [], known: () => true, onStream: record, idleMs: 2000 })
  gateway = new AppGateway({ host: gatewayHost, networkId: NETWORK, self: gatewayHost.peerId.toString(), log, localPort: () => undefined, endpoints: () => endpoints(), known: () => true, onStream: record, idleMs: 2000 })
  await instanceGateway.start()
  await gateway.start()
  front = createServer((req, res) => { void gateway.handle(req, res, new URL(req.url ?? '/', 'http://x').pathname) })
  front.listen(0, '127.0.0.1')
  await once(front, 'listening')
  frontPort = (front.address() as AddressInfo).port
})

afterAll(async () => {
  front?.close()
  instance.server?.close()
  for (const h of [gatewayHost, instanceHost, rogueHost]) await h?.stop()
})

beforeEach(() => {
  endpoints = () => [instanceHost.peerId.toString()]
  streams.length = 0
  instance.cut.length = 0
  instance.written = 0
  instance.uploaded = 0
})

/** One HTTP request to the gateway; the answer's body is read as it comes. */
async function call (path: string, options: { method?: string, body?: (req: ReturnType<typeof request>) => Promise<void> } = {}): Promise<IncomingMessage> {
  const req = request({ host: '127.0.0.1', port: frontPort, path, method: options.method ?? 'GET', ...(options.body === undefined ? {} : { headers: { 'transfer-encoding': 'chunked' } }) })
  const answered = new Promise<IncomingMessage>((resolve, reject) => { req.on('response', resolve); req.on('error', reject) })
  if (options.body === undefined) req.end()
  else await options.body(req)
  return await answered
}

async function drain (res: IncomingMessage): Promise<{ size: number, sha256: string }> {
  const h = createHash('sha256')
  let size = 0
  for await (const chunk of res) { h.update(chunk as Buffer); size += (chunk as Buffer).length }
  return { size, sha256: h.digest('hex') }
}

async function until (check: () => boolean): Promise<void> {
  while (!check()) await new Promise(resolve => setTimeout(resolve, 20))
}

const ended = (end: 'gateway' | 'instance'): StreamRecord[] => streams.filter(s => s.end === end)

describe('the app gateway streams bodies over the mesh', () => {
  it('carries a 64 MiB answer (4× the old cap) with at most a window of it held at either end', async () => {
    const res = await call('/app/hello/download?mib=64')
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-mycelium-instance']).toBe(instanceHost.peerId.toString())
    expect(await drain(res)).toEqual({ size: 64 * MiB, sha256: digestOf(64 * MiB) })
    await until(() => ended('gateway').length === 1 && ended('instance').length === 1)
    const [g] = ended('gateway')
    const [i] = ended('instance')
    expect(g.error).toBeUndefined()
    expect(g.counters.received).toBe(64 * MiB)
    expect(i.counters.sent).toBe(64 * MiB)
    expect(g.counters.peakUnread).toBeGreaterThan(0)
    expect(g.counters.peakUnread).toBeLessThanOrEqual(WINDOW_BYTES)
  })

  it('carries a 16 MiB request body (4× the old cap) to the instance, held a window at a time', async () => {
    const res = await call('/app/hello/upload', {
      method: 'POST',
      body: async (req) => {
        for (let i = 0; i * 64 * 1024 < 16 * MiB; i++) if (!req.write(block(i))) await once(req, 'drain')
        req.end()
      }
    })
    expect(res.statusCode).toBe(200)
    expect(JSON.parse((await res.toArray()).join(''))).toEqual({ size: 16 * MiB, sha256: digestOf(16 * MiB) })
    await until(() => ended('instance').length === 1)
    const [i] = ended('instance')
    expect(i.counters.received).toBe(16 * MiB)
    expect(i.counters.peakUnread).toBeLessThanOrEqual(WINDOW_BYTES)
  })

  it('starts the answer before the instance has finished it', async () => {
    const res = await call('/app/hello/gated')
    expect(res.statusCode).toBe(200)
    const [first] = await Promise.all([once(res, 'data')])
    expect(String(first[0])).toBe('first;')
    // the instance sends the rest only now that the client holds the first bytes
    instance.release!()
    let rest = ''
    for await (const chunk of res) rest += String(chunk)
    expect(rest).toBe('rest')
  })

  it('a client that stops reading stalls the instance; when it leaves, the instance\'s request is aborted', async () => {
    const res = await call('/app/hello/download?mib=64')
    await once(res, 'data')
    res.pause()
    await until(() => instance.stalled)
    res.destroy()
    await until(() => instance.cut.includes('answer /download'))
    await until(() => ended('gateway').length === 1 && ended('instance').length === 1)
    expect(instance.written).toBeLessThan(16 * MiB)
    expect(ended('gateway')[0].counters.peakUnread).toBeLessThanOrEqual(WINDOW_BYTES)
    expect(ended('instance')[0].error).toBeDefined()
  })

  it('a client that leaves mid-upload aborts the instance\'s request', async () => {
    const client = request({ host: '127.0.0.1', port: frontPort, path: '/app/hello/upload', method: 'POST', headers: { 'transfer-encoding': 'chunked' } })
    client.on('error', () => {})
    client.write(block(0))
    client.write(block(1))
    await until(() => instance.uploaded >= 2 * 64 * 1024)
    client.destroy()
    await until(() => instance.cut.includes('request /upload'))
    expect((await call('/app/hello/')).statusCode).toBe(200)
  })

  it('an instance that dies mid-answer leaves a truncated answer and a gateway that keeps answering', async () => {
    const res = await call('/app/hello/die')
    expect(res.statusCode).toBe(200)
    await expect(drain(res)).rejects.toThrow()
    await until(() => ended('gateway').length === 1)
    expect(ended('gateway')[0].error).toBeDefined()
    const ok = await call('/app/hello/')
    expect(ok.statusCode).toBe(200)
    expect((await ok.toArray()).join('')).toBe('ok')
  })
})

/** A member's raw stream to the instance's gateway, frames written by hand. */
async function rogueStream (): Promise<{ write: (frame: GatewayFrame | Uint8Array) => Promise<void>, read: () => Promise<unknown> }> {
  const stream = await rogueHost.dialProtocol(instanceHost.peerId, gatewayProtocol(NETWORK))
  const lp = lpStream(stream)
  return {
    write: async (frame) => { await lp.write(frame instanceof Uint8Array ? frame : encodeFrame(frame)) },
    read: async () => await lp.read()
  }
}

const head = encodeHead({ app: 'hello', method: 'POST', path: '/upload', headers: [] })
const hold = encodeHead({ app: 'hello', method: 'POST', path: '/hold', headers: [] })

describe('a member that breaks the gateway protocol loses its stream, and only it', () => {
  const cases: Array<[string, (s: Awaited<ReturnType<typeof rogueStream>>) => Promise<void>]> = [
    ['body data before the head', async (s) => { await s.write({ kind: 'data', bytes: block(0) }) }],
    ['a second head', async (s) => { await s.write({ kind: 'head', bytes: head }); await s.write({ kind: 'head', bytes: head }) }],
    ['endless body data beyond its credit', async (s) => {
      // to an instance that never reads its request: credit stops once the instance's socket is full
      await s.write({ kind: 'head', bytes: hold })
      await s.read()
      for (let i = 0; i < 1024; i++) await s.write({ kind: 'data', bytes: block(i) })
    }],
    ['an unknown frame type', async (s) => { await s.write(Uint8Array.of(9, 1, 2)) }],
    ['a frame larger than the protocol allows', async (s) => { await s.write(new Uint8Array(128 * 1024).fill(2)) }],
    ['credit beyond the window', async (s) => { await s.write({ kind: 'head', bytes: head }); await s.write({ kind: 'credit', bytes: WINDOW_BYTES }) }]
  ]
  for (const [what, send] of cases) {
    it(what, async () => {
      const s = await rogueStream()
      await send(s).catch(() => {})
      await until(() => ended('instance').length === 1)
      const [i] = ended('instance')
      expect(i.error?.message).toMatch(/malformed gateway stream from the peer|Message length too long/)
      // the instance's end never held more than the window it granted
      expect(i.counters.peakUnread).toBeLessThanOrEqual(WINDOW_BYTES)
      // the stream is gone for the member: reading it ends in an error
      let read: unknown
      try { for (;;) read = await s.read() } catch (err) { read = err }
      expect(read).toBeInstanceOf(Error)
      const ok = await call('/app/hello/')
      expect(ok.statusCode).toBe(200)
    })
  }

  it('an answering member that floods data beyond its credit: the client\'s answer is cut, the gateway goes on', async () => {
    await rogueHost.handle(gatewayProtocol(NETWORK), async (stream) => {
      const lp = lpStream(stream)
      await lp.write(encodeFrame({ kind: 'head', bytes: encodeHead({ status: 200, headers: [] }) }))
      for (let i = 0; i < 1024; i++) await lp.write(encodeFrame({ kind: 'data', bytes: block(i) })).catch(() => {})
    })
    try {
      endpoints = () => [rogueHost.peerId.toString()]
      const res = await call('/app/hello/')
      // a client that does not read: the gateway stops granting once its socket is full
      res.pause()
      await until(() => ended('gateway').length === 1)
      res.destroy()
      expect(ended('gateway')[0].error?.message).toMatch(/malformed gateway stream from the peer/)
      expect(ended('gateway')[0].counters.peakUnread).toBeLessThanOrEqual(WINDOW_BYTES)
    } finally {
      await rogueHost.unhandle(gatewayProtocol(NETWORK))
    }
    endpoints = () => [instanceHost.peerId.toString()]
    expect((await call('/app/hello/')).statusCode).toBe(200)
  })

  it('an answering member that grants one window and never reads: the gateway sends exactly that window, then gives up', async () => {
    await rogueHost.handle(gatewayProtocol(NETWORK), async (stream) => {
      const lp = lpStream(stream)
      await lp.write(encodeFrame({ kind: 'credit', bytes: WINDOW_BYTES }))
      // and nothing more: no reads, no answer
    })
    try {
      endpoints = () => [rogueHost.peerId.toString()]
      const outcome = await call('/app/hello/upload', {
        method: 'POST',
        body: async (req) => {
          req.on('error', () => {})
          for (let i = 0; i * 64 * 1024 < 2 * MiB && !req.destroyed; i++) if (!req.write(block(i))) await Promise.race([once(req, 'drain'), once(req, 'close')])
          req.end()
        }
      }).then(res => res.statusCode, (err: Error) => err.message)
      expect([502, 'socket hang up', 'read ECONNRESET']).toContain(outcome)
      await until(() => ended('gateway').length === 1)
      const [g] = ended('gateway')
      expect(g.counters.sent).toBe(WINDOW_BYTES)
      expect(g.error?.message).toMatch(/nothing moved/)
    } finally {
      await rogueHost.unhandle(gatewayProtocol(NETWORK))
    }
  })
})
