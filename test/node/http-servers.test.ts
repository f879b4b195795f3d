// Hostile raw requests against the node's two HTTP servers, in this process: the public site
// every node opens on 0.0.0.0 and the admin API. Raw bytes over a socket, since fetch
// normalises what these requests are made of. Each server must answer (or drop) the request,
// stay up, never serve anything but its own files, and leave no promise rejected unhandled
// (an unhandled rejection ends a daemon).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { connect } from 'node:net'
import { StaticSite, type SiteFile } from '../../node/browser/index.ts'
import { AdminApi, ApiError } from '../../node/api/index.ts'
import { raw, get, HOSTILE } from '../harness/raw-http.ts'

const FILES = new Map<string, SiteFile>([
  ['/index.html', { body: Buffer.from('<!doctype html><title>hyphae</title>'), contentType: 'text/html; charset=utf-8' }],
  ['/app.js', { body: Buffer.from('console.log("hyphae")'), contentType: 'text/javascript; charset=utf-8' }],
  ['/style.css', { body: Buffer.from('body{}'), contentType: 'text/css; charset=utf-8' }]
])

function trackUnhandled (): { rejections: unknown[], stop: () => void } {
  const rejections: unknown[] = []
  const onRejection = (reason: unknown): void => { rejections.push(reason) }
  const onException = (err: unknown): void => { rejections.push(err) }
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
  return { rejections, stop: () => { process.off('unhandledRejection', onRejection); process.off('uncaughtException', onException) } }
}

describe('the public HTTP server survives hostile requests', () => {
  let site: StaticSite
  let port: number
  let unhandled: ReturnType<typeof trackUnhandled>

  beforeAll(async () => {
    unhandled = trackUnhandled()
    site = new StaticSite({
      files: () => FILES,
      refusal: () => undefined,
      endpoints: {
        'POST /join-requests': ({ body }) => ({ status: 202, body: { got: typeof body } }),
        'GET /join-requests/': ({ path }) => ({ status: 200, body: { peerId: decodeURIComponent(path.slice('/join-requests/'.length)) } })
      }
    })
    port = await site.listen(0, '127.0.0.1')
  })
  afterAll(async () => {
    unhandled.stop()
    await site.close()
  })

  it('answers every hostile request with a client error, or drops it, and never with a file', async () => {
    for (const [name, request] of HOSTILE) {
      const answer = await raw(port, request)
      // nothing outside the three in-memory files can be served; none of them was asked for
      expect(answer.text, name).not.toMatch(/root:|hyphae/)
      expect([0, 400, 404, 405, 413, 414, 431], name).toContain(answer.status)
      // and the server is still there after each of them
      expect((await raw(port, get('/'))).status, `GET / after "${name}"`).toBe(200)
    }
    expect(unhandled.rejections).toEqual([])
  }, 120_000)

  it('malformed request targets get a clear 400', async () => {
    for (const target of ['//', '//etc/passwd', '/\\evil.example/', 'http://[::1', 'http://evil.example/', '/%zz/%', '*']) {
      const answer = await raw(port, get(target))
      expect(answer.status, target).toBe(400)
      expect(answer.text, target).toMatch(/malformed request target/)
    }
    // Node's own parser refuses this one before the server sees it: a bare 400
    expect((await raw(port, get('%zz'))).status).toBe(400)
  })

  it('a malformed path in an endpoint is a 400, not a 500', async () => {
    const answer = await raw(port, get('/join-requests/%E0%A4%A'))
    expect(answer.status).toBe(400)
  })

  it('still serves the bundle: GET / is the page, traversal finds nothing', async () => {
    const page = await raw(port, get('/'))
    expect(page.status).toBe(200)
    expect(page.text).toContain('<title>hyphae</title>')
    expect((await raw(port, get('/app.js'))).status).toBe(200)
    for (const target of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fetc%2fpasswd', '/../app.js/../../etc/passwd']) {
      const answer = await raw(port, get(target))
      expect(answer.status, target).toBe(404)
    }
    expect(unhandled.rejections).toEqual([])
  })
})

describe('the admin API survives hostile requests', () => {
  const TOKEN = 'test-token-0123456789'
  let api: AdminApi
  let port: number
  let unhandled: ReturnType<typeof trackUnhandled>

  beforeAll(async () => {
    unhandled = trackUnhandled()
    api = new AdminApi({
      'GET /status': () => ({ ok: true }),
      // a handler whose error is not an HTTP status: the catch itself must not throw
      'GET /odd-status': () => { throw new ApiError(1000, 'not a status') },
      'GET /unserialisable': () => ({ n: 1n }),
      'GET /slow': async () => { await new Promise(resolve => setTimeout(resolve, 300)); return { late: true } }
    }, TOKEN)
    port = await api.listen(0)
  })
  afterAll(async () => {
    unhandled.stop()
    await api.close()
  })

  const auth = `Host: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n`

  it('answers or drops every hostile request, with and without the token, and stays up', async () => {
    for (const [name, request] of HOSTILE) {
      for (const withToken of [false, true]) {
        const text = typeof request === 'string' && withToken ? request.replace('\r\n', `\r\nAuthorization: Bearer ${TOKEN}\r\n`) : request
        const answer = await raw(port, text)
        expect([0, 400, 401, 404, 405, 413, 431], `${name} (token: ${withToken})`).toContain(answer.status)
        expect((await raw(port, get('/status', auth))).status, `GET /status after "${name}"`).toBe(200)
      }
    }
    expect(unhandled.rejections).toEqual([])
  }, 180_000)

  it('malformed request targets get a clear 400 (behind the token)', async () => {
    for (const target of ['//', 'http://[::1']) {
      const answer = await raw(port, get(target, auth))
      expect(answer.status, target).toBe(400)
      expect(answer.text, target).toMatch(/malformed request target/)
    }
    expect((await raw(port, get('//'))).status).toBe(401)
  })

  it('a handler error that is no HTTP status, or an unserialisable answer, is a 500; a client gone mid-request is no crash', async () => {
    expect((await raw(port, get('/odd-status', auth))).status).toBe(500)
    expect((await raw(port, get('/unserialisable', auth))).status).toBe(500)
    // the client hangs up before the handler answers
    const socket = connect(port, '127.0.0.1', () => { socket.end(get('/slow', auth)); setTimeout(() => socket.destroy(), 20) })
    socket.on('error', () => {})
    await new Promise(resolve => setTimeout(resolve, 600))
    expect((await raw(port, get('/status', auth))).status).toBe(200)
    expect(unhandled.rejections).toEqual([])
  })
})
