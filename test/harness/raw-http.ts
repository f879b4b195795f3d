// Raw HTTP/1.1 requests for tests of the node's HTTP servers: bytes as they are, over a
// socket, since fetch normalises the request targets these tests are about.
import { connect } from 'node:net'

export interface RawAnswer {
  /** 0 when the server closed or stayed silent without a status line */
  status: number
  /** the whole answer, headers and body */
  text: string
}

/** Sends bytes as they are and reads until the server closes or goes quiet. */
export async function raw (port: number, request: string | Buffer, quietMs = 1500): Promise<RawAnswer> {
  return await new Promise((resolve) => {
    const chunks: Buffer[] = []
    const socket = connect(port, '127.0.0.1')
    let timer: NodeJS.Timeout | undefined
    const done = (): void => {
      clearTimeout(timer)
      socket.destroy()
      const text = Buffer.concat(chunks).toString('latin1')
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text)
      resolve({ status: m === null ? 0 : Number(m[1]), text })
    }
    const quiet = (): void => { clearTimeout(timer); timer = setTimeout(done, quietMs) }
    socket.on('connect', () => { socket.write(request, () => quiet()) })
    socket.on('data', (d: Buffer) => { chunks.push(d); quiet() })
    socket.on('error', () => {})
    socket.on('close', done)
  })
}

export const get = (target: string, headers = 'Host: node\r\n'): string => `GET ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`

/** Requests no server may crash on; none of them asks for a file of the bundle. */
export const HOSTILE: Array<[string, string | Buffer]> = [
  ['empty authority (//)', get('//')],
  ['empty authority with a path', get('//etc/passwd')],
  ['unclosed IPv6 host', get('http://[::1')],
  ['absolute-form to elsewhere', get('http://evil.example/etc/passwd')],
  ['bad percent escape', get('%zz')],
  ['bad percent escape in a path', get('/%zz/%')],
  ['asterisk-form', 'OPTIONS * HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n'],
  ['no leading slash', get('index.html')],
  ['traversal', get('/../../etc/passwd')],
  ['encoded traversal', get('/%2e%2e/%2e%2e/etc/passwd')],
  ['encoded slashes', get('/..%2f..%2fetc%2fpasswd')],
  ['backslashes', get('/..\\..\\etc\\passwd')],
  ['traversal through a file', get('/index.html/../../../../etc/passwd')],
  ['relative traversal', get('../../etc/passwd')],
  ['NUL byte', get('/index.html%00.js')],
  ['absurdly long path (over the header limit)', get(`/${'a'.repeat(100_000)}`)],
  ['long path under the header limit', get(`/${'a/'.repeat(6000)}`)],
  ['long path of dots', get(`/${'../'.repeat(4000)}etc/passwd`)],
  ['bad Host header', get('/etc/passwd', 'Host: [::1\r\n')],
  ['Host header with a path', get('/etc/passwd', 'Host: a/../..\r\n')],
  ['Host header of a URL', get('/passwd', 'Host: http://evil.example/etc\r\n')],
  ['two Host headers', get('/etc/passwd', 'Host: a\r\nHost: b\r\n')],
  ['no Host header', 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n'],
  ['header flood', get('/etc/passwd', `Host: node\r\n${Array.from({ length: 1400 }, (_, i) => `x-${i}: y`).join('\r\n')}\r\n`)],
  ['header flood over the limit', get('/etc/passwd', `Host: node\r\n${Array.from({ length: 5000 }, (_, i) => `x-${i}: y`).join('\r\n')}\r\n`)],
  ['one huge header', get('/etc/passwd', `Host: node\r\nx-big: ${'b'.repeat(64_000)}\r\n`)],
  ['malformed request line', 'GARBAGE\r\n\r\n'],
  ['binary garbage', Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) % 256))],
  ['HTTP/0.9', 'GET /etc/passwd\r\n\r\n'],
  ['CONNECT', 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n'],
  ['upgrade to a websocket', get('/ws', 'Host: node\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n')],
  ['bad chunked body', 'POST /join-requests HTTP/1.1\r\nHost: node\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n0\r\n\r\n'],
  ['body longer than announced, then cut', 'POST /join-requests HTTP/1.1\r\nHost: node\r\nContent-Length: 100000\r\n\r\n{"peerId":'],
  ['malformed endpoint path', get('/join-requests/%E0%A4%A')],
  ['endpoint traversal', get('/join-requests/../../etc/passwd')],
  ['method with a body-less POST to a file', 'POST /index.html HTTP/1.1\r\nHost: node\r\nContent-Length: 0\r\nConnection: close\r\n\r\n']
]

