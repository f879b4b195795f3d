// The node's two HTTP servers, in this process on 127.0.0.1 port 0: the public site (the
// hyphae client and its join-request endpoints) and the admin API (behind its token; real
// body validation of `POST /vm/run`). Each input is raw request bytes over a fresh socket,
// half-closed after writing. Properties: no 5xx for any input, a status for every well-formed
// request, the server still serving afterwards, no unhandled rejection.
import { connect } from 'node:net'
import fc from 'fast-check'
import { StaticSite, type SiteFile } from '../../../node/browser/static-site.ts'
import { AdminApi } from '../../../node/api/index.ts'
import { parseRunRequest } from '../../../node/vm/run-request.ts'
import { FuzzFailure, type AsyncFuzzTarget, type AsyncSession } from '../engine/target.ts'
import { text } from './fixtures.ts'

const ANSWER_TIMEOUT_MS = 2000
const TOKEN = 'ab'.repeat(32)

interface Exchange {
  statuses: number[]
  /** The client could not connect (e.g. no ephemeral port left): not the server's doing. */
  connectError?: string
}

/** Sends bytes, half-closes, reads until the server closes; every status line it answered. */
async function exchangeOnce (port: number, bytes: Uint8Array): Promise<Exchange> {
  return await new Promise((resolve) => {
    const chunks: Buffer[] = []
    let connectError: string | undefined
    let connected = false
    const socket = connect(port, '127.0.0.1')
    const done = (): void => {
      clearTimeout(timer)
      socket.destroy()
      const answer = Buffer.concat(chunks).toString('latin1')
      resolve({ statuses: [...answer.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map(m => Number(m[1])), connectError })
    }
    const timer = setTimeout(done, ANSWER_TIMEOUT_MS)
    socket.on('connect', () => { connected = true; socket.end(bytes) })
    socket.on('data', (d: Buffer) => { chunks.push(d) })
    socket.on('error', (err: NodeJS.ErrnoException) => { if (!connected) connectError = err.code ?? err.message })
    socket.on('close', done)
  })
}

/** Retries what failed on the client's side only, so a busy machine is not taken for a dead server. */
async function exchange (port: number, bytes: Uint8Array): Promise<Exchange> {
  let result = await exchangeOnce(port, bytes)
  for (let attempt = 1; attempt <= 3 && result.connectError !== undefined; attempt++) {
    await new Promise(resolve => setTimeout(resolve, 100 * attempt))
    result = await exchangeOnce(port, bytes)
  }
  return result
}

function sessionOn (port: number, health: Uint8Array, stop: () => Promise<void>): AsyncSession {
  return {
    async exec (bytes, wellFormed) {
      const { statuses, connectError } = await exchange(port, bytes)
      if (connectError !== undefined) throw new Error(`the client could not connect: ${connectError}`)
      const failed = statuses.find(s => s >= 500)
      if (failed !== undefined) throw new FuzzFailure(`answered ${failed} to a client's request`)
      if (wellFormed && statuses.length === 0) throw new FuzzFailure('no status for a well-formed request')
      return statuses.length === 0 ? 'no answer' : `status ${statuses[0]}`
    },
    async alive () {
      const { statuses: [status], connectError } = await exchange(port, health)
      if (status !== 200) throw new FuzzFailure(`the health request got ${status ?? (connectError === undefined ? 'no answer' : `no connection (${connectError})`)}`)
    },
    stop
  }
}

interface Grammar {
  methods: string[]
  targets: string[]
  headers: string[]
  bodies: string[]
}

/** Requests built from parts; well-formed when every part is a valid one and the length is right. */
function requests (g: Grammar): fc.Arbitrary<{ bytes: Uint8Array, wellFormed: boolean }> {
  const weird = fc.constantFrom('GET  / HTTP/1.1', 'get / HTTP/1.1', 'GET / HTTP/9.9', 'GET / HTTP/1.1 x', 'GET\t/\tHTTP/1.1', 'POST /join-requests HTTP/1.0', '\u0000GET / HTTP/1.1', 'GET /\u00ff HTTP/1.1')
  return fc.record({
    method: fc.oneof(fc.constantFrom(...g.methods), fc.constantFrom('PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'BREW', 'G\u00c9T')),
    target: fc.oneof(fc.constantFrom(...g.targets), fc.webPath(), fc.constantFrom('*', '//', 'http://a/b', '/%', '/%zz', '/\u0000', '/?a=%ff', `/${'x'.repeat(9000)}`)),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 '),
    headers: fc.subarray(g.headers),
    oddHeaders: fc.subarray(['Host: a\r\nHost: b', 'Content-Length: -1', 'Content-Length: 99999999999', 'Content-Length: 3\r\nContent-Length: 4', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked\r\nContent-Length: 2', 'Expect: 100-continue', 'Connection: keep-alive, Upgrade', 'X: \u0000', ' folded: header', 'Content-Type: application/json; charset=latin1']),
    body: fc.oneof(fc.constantFrom(...g.bodies), fc.json({ maxDepth: 3 }), fc.string({ maxLength: 40 }), fc.constantFrom('{"a":' + '['.repeat(5000), 'x'.repeat(2000_000))),
    line: fc.option(weird, { freq: 8 }),
    chunked: fc.boolean()
  }).map(r => {
    const headers = [...r.headers, ...r.oddHeaders]
    const withBody = r.method === 'POST'
    const body = withBody ? r.body : ''
    const framed = r.chunked && withBody && r.oddHeaders.length === 0
      ? ['Transfer-Encoding: chunked', `\r\n${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`]
      : [`Content-Length: ${Buffer.byteLength(body)}`, `\r\n${body}`]
    const head = r.line ?? `${r.method} ${r.target} ${r.version}`
    const wellFormed = r.line === null && g.methods.includes(r.method) && g.targets.includes(r.target) && r.version.startsWith('HTTP/1.') && !r.version.endsWith(' ') &&
      r.oddHeaders.length === 0 && headers.some(h => h.startsWith('Host:')) && body.length < 1000
    return { bytes: text(`${head}\r\n${[...headers, 'Connection: close', framed[0]].join('\r\n')}\r\n${framed[1]}`), wellFormed }
  })
}

const FILES = new Map<string, SiteFile>([
  ['/index.html', { body: Buffer.from('<!doctype html><title>hyphae</title>'), contentType: 'text/html; charset=utf-8' }],
  ['/app.js', { body: Buffer.from('console.log(1)'), contentType: 'text/javascript; charset=utf-8' }]
])

const siteGrammar: Grammar = {
  methods: ['GET', 'HEAD', 'POST'],
  targets: ['/', '/index.html', '/app.js', '/missing', '/join-requests', '/join-requests/12D3KooWDa7Y4fJc1bFY7wBqJ1j1ZXAc9cPe962HTdYhBuWtvAxD', '/join-requests/%E2%9C%93', '/?q=1'],
  headers: ['Host: node', 'Accept: */*', 'Content-Type: application/json', 'User-Agent: fuzz'],
  bodies: ['{"peerId":"12D3KooWDa7Y4fJc1bFY7wBqJ1j1ZXAc9cPe962HTdYhBuWtvAxD"}', '{}', 'null', '[1,2]', '{"peerId":{"toString":1}}']
}

export const staticSiteTarget: AsyncFuzzTarget = {
  name: 'http-public-site',
  what: 'node/browser/static-site.ts StaticSite (raw requests over a socket)',
  layers: [{ name: 'request', structure: 'text', seeds: siteGrammar.targets.map(t => text(`GET ${t} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n`)) }],
  extra: requests(siteGrammar),
  async start () {
    const site = new StaticSite({
      files: () => FILES,
      refusal: () => undefined,
      // the shapes of the real join-request endpoints: a JSON body in, a JSON answer out
      endpoints: {
        'POST /join-requests': ({ body }) => ({ status: typeof (body as { peerId?: unknown } | undefined)?.peerId === 'string' ? 202 : 400, body: {} }),
        'GET /join-requests/': ({ path }) => ({ status: 404, body: { peerId: decodeURIComponent(path.slice('/join-requests/'.length)) } })
      }
    })
    const port = await site.listen(0, '127.0.0.1')
    return sessionOn(port, text('GET / HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n'), async () => { await site.close() })
  }
}

const apiGrammar: Grammar = {
  methods: ['GET', 'POST'],
  targets: ['/status', '/metrics', '/vm/run', '/echo', '/missing', '/status?x=1&y=%20'],
  headers: ['Host: 127.0.0.1', `Authorization: Bearer ${TOKEN}`, `Authorization: Bearer ${TOKEN}`, 'Content-Type: application/json'],
  bodies: ['{"memoryMb":64,"backups":1}', '{}', '{"pinnedBackups":["x"]}', '{"engine":{"toString":1}}', '{"backups":1e400}', 'null']
}

export const adminApiTarget: AsyncFuzzTarget = {
  name: 'http-admin-api',
  what: 'node/api/server.ts AdminApi (raw requests over a socket, token, JSON bodies)',
  layers: [{ name: 'request', structure: 'text', seeds: [text(`GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`), text(`POST /vm/run HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{"memoryMb":64}`)] }],
  extra: requests(apiGrammar),
  async start () {
    const api = new AdminApi({
      'GET /status': () => ({ ok: true }),
      'GET /metrics': { text: true, contentType: 'text/plain', handler: () => 'up 1\n' },
      // the real validation of a route's body: bad input is an ApiError 400, never a 500
      'POST /vm/run': ({ body }) => parseRunRequest(body),
      'POST /echo': ({ body, query }) => ({ body: body ?? null, query: Object.fromEntries(query) })
    }, TOKEN)
    const port = await api.listen(0)
    return sessionOn(port, text(`GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`), async () => { await api.close() })
  }
}

export const httpTargets = [staticSiteTarget, adminApiTarget]
