// Browser join requests against a real administrator daemon, driven the way an attacker on the
// network would: raw HTTP from chosen source addresses (127.0.0.1 and 127.0.0.2 are two
// machines here), a flood of asks, a guessed look-alike code, and an attempt to collect
// another tab's approved invite. The tab is played by an Ed25519 key in this process; the
// browser test drives the same flow from Chromium.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { request } from 'node:http'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { Cluster, type TestNode } from '../harness/index.ts'
import { toBase64Url } from '../../crypto/index.ts'
import { collectProofMessage } from '../../browser-client/index.ts'

interface Answer { status: number, body: any, retryAfter?: string }

/** One HTTP request to the node's public port from `from` (a loopback address of this machine). */
async function call (port: number, method: string, path: string, body: string | undefined, from: string): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, localAddress: from, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed, retryAfter: res.headers['retry-after'] as string | undefined })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

interface Tab { key: PrivateKey, peerId: string }

async function newTab (): Promise<Tab> {
  const key = await generateKeyPair('Ed25519')
  return { key, peerId: peerIdFromPrivateKey(key).toString() }
}

async function proof (tab: Tab, requestId: string): Promise<string> {
  return toBase64Url(await tab.key.sign(collectProofMessage(requestId)))
}

describe('browser join requests on a real administrator node', () => {
  const cluster = new Cluster()
  let admin: TestNode
  let port: number
  const ask = async (peerId: string, from: string): Promise<Answer> => await call(port, 'POST', '/join-requests', JSON.stringify({ peerId }), from)
  const collect = async (requestId: string, signature: string, from = '127.0.0.1'): Promise<Answer> => await call(port, 'POST', '/join-requests/collect', JSON.stringify({ requestId, signature }), from)
  const approve = async (code: string): Promise<{ status: number, body: any }> => {
    try {
      return { status: 200, body: await admin.api('/browser/join-requests/approve', 'POST', { request: code }) }
    } catch (err) {
      return { status: (err as { status?: number }).status ?? 0, body: (err as Error).message }
    }
  }

  beforeAll(async () => {
    admin = cluster.newNode('admin', { startArgs: ['--http-port', '0', '--role', 'sclerotium'] })
    await admin.start()
    port = Number(new URL((await admin.api<{ httpUrl: string }>('/status')).httpUrl).port)
  }, 120_000)
  afterAll(async () => { await cluster.destroy() })

  it('a flood of join requests from one address is cut off with 429; another address still gets in', async () => {
    const answers: Answer[] = []
    for (let i = 0; i < 40; i++) answers.push(await ask((await newTab()).peerId, '127.0.0.1'))
    const accepted = answers.filter(a => a.status === 202).length
    expect(accepted).toBeLessThanOrEqual(4)
    expect(answers.filter(a => a.status === 429).length).toBe(40 - accepted)
    const cut = answers.find(a => a.status === 429)!
    expect(Number(cut.retryAfter)).toBeGreaterThan(0)
    expect(cut.body.error).toMatch(/too many join requests from your address/)

    const honest = await newTab()
    const other = await ask(honest.peerId, '127.0.0.2')
    expect(other.status).toBe(202)
    expect(other.body.code).toMatch(/^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$/)
    // the queue holds at most four from the flooding address, and the honest request
    const pending = await admin.api<Array<{ peerId: string, from: string }>>('/browser/join-requests')
    expect(pending.filter(r => r.from === '127.0.0.1').length).toBeLessThanOrEqual(4)
    expect(pending.some(r => r.peerId === honest.peerId && r.from === '127.0.0.2')).toBe(true)
    expect(admin.running()).toBe(true)
  })

  it('a look-alike of the peer id, a wrong code or a partial id approves nothing; the code on the tab approves that tab', async () => {
    // the attacker asks first, from a third address: with codes taken from peer ids its
    // ground look-alike would have been found first
    const attacker = await newTab()
    const asked = await ask(attacker.peerId, '127.0.0.3')
    expect(asked.status).toBe(202)
    const tab = await newTab()
    const mine = await ask(tab.peerId, '127.0.0.4')
    expect(mine.status).toBe(202)
    expect(mine.body.code).not.toBe(asked.body.code)

    for (const guess of [tab.peerId.slice(-6).toUpperCase(), tab.peerId.slice(-8), 'AAAA-AAAA', tab.peerId.slice(0, 40), '']) {
      const refused = await approve(guess)
      expect(refused.status, `approve "${guess}"`).toBeGreaterThanOrEqual(400)
      expect(refused.status, `approve "${guess}"`).toBeLessThan(500)
    }
    // the operator types what the tab shows, in any case, with or without the dash
    const approved = await approve(mine.body.code.toLowerCase().replace('-', ''))
    expect(approved.status).toBe(200)
    expect(approved.body.peerId).toBe(tab.peerId)
    expect(await collect(asked.body.requestId, await proof(attacker, asked.body.requestId))).toMatchObject({ status: 200, body: { status: 'pending' } })

    // the invite goes to the holder of the tab's key, once
    const got = await collect(mine.body.requestId, await proof(tab, mine.body.requestId), '127.0.0.4')
    expect(got.status).toBe(200)
    expect(got.body.status).toBe('approved')
    expect(got.body.invite).toMatch(/^myc1\./)
    expect((await collect(mine.body.requestId, await proof(tab, mine.body.requestId))).status).toBe(404)
    expect(admin.log()).not.toContain(got.body.invite)
  })

  it('another tab\'s approved invite cannot be fetched without its key', async () => {
    const tab = await newTab()
    const thief = await newTab()
    const asked = await ask(tab.peerId, '127.0.0.5')
    expect((await approve(asked.body.code)).status).toBe(200)
    // knowing the peer id was enough before
    const byPeerId = await call(port, 'GET', `/join-requests/${encodeURIComponent(tab.peerId)}`, undefined, '127.0.0.6')
    expect(JSON.stringify(byPeerId.body)).not.toMatch(/myc1\./)
    // even with the request id: a signature by another key, a garbage one, none
    const forged = await collect(asked.body.requestId, await proof(thief, asked.body.requestId), '127.0.0.6')
    expect(forged.status).toBe(403)
    expect(forged.body.error).toMatch(/not the requesting key/)
    expect((await collect(asked.body.requestId, toBase64Url(new Uint8Array(64)), '127.0.0.6')).status).toBe(403)
    expect((await collect(asked.body.requestId, await proof(tab, 'another request id'), '127.0.0.6')).status).toBe(403)
    expect((await call(port, 'POST', '/join-requests/collect', JSON.stringify({ requestId: asked.body.requestId }), '127.0.0.6')).status).toBe(400)
    // the tab itself still collects it
    const got = await collect(asked.body.requestId, await proof(tab, asked.body.requestId), '127.0.0.5')
    expect(got.body.invite).toMatch(/^myc1\./)
  })

  it('bad input gets a clear 4xx and the daemon lives', async () => {
    const cases: Array<[string, string, string]> = [
      ['not JSON', '/join-requests', '{"peerId":'],
      ['no peer id', '/join-requests', '{}'],
      ['a peer id that is no key', '/join-requests', JSON.stringify({ peerId: 'hello' })],
      ['a secp256k1 peer id', '/join-requests', JSON.stringify({ peerId: '16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY' })],
      ['an array', '/join-requests/collect', '[1,2,3]'],
      ['signature not base64url', '/join-requests/collect', JSON.stringify({ requestId: 'x', signature: '!!!' })],
      ['an unknown request', '/join-requests/collect', JSON.stringify({ requestId: 'AAAAAAAAAAAAAAAAAAAAAA', signature: toBase64Url(new Uint8Array(64)) })],
      ['a body over 1 KiB', '/join-requests', JSON.stringify({ peerId: 'x'.repeat(2000) })]
    ]
    for (const [i, [name, path, body]] of cases.entries()) {
      // each from its own address: this is about decoding, not the rate limit
      const answer = await call(port, 'POST', path, body, `127.0.1.${i + 1}`)
      expect(answer.status, name).toBeGreaterThanOrEqual(400)
      expect(answer.status, name).toBeLessThan(500)
      expect(typeof answer.body.error, name).toBe('string')
      expect(admin.running(), name).toBe(true)
    }
    expect((await admin.api('/status')).peerId).toBe(admin.peerId)
  })
})
