import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { Cluster, TestNode, waitFor, REPO_ROOT, capabilities, titled } from '../harness/index.ts'
import { buildBrowserClient, encodeStoredMembership, MEMBERSHIP_STORAGE_KEY } from '../../browser-client/index.ts'
import { Home } from '../../node/home/index.ts'
import { ApiClient } from '../../node/api/index.ts'
import { openBrowser, type TestBrowser } from './chromium.ts'

const RESULTS = join(REPO_ROOT, 'test-results')

/** Reads a node's admin API in-process (what the CLI shows), cheaper than a CLI process per poll. */
async function read<T = any> (node: TestNode, path: string): Promise<T> {
  return await ApiClient.forHome(new Home(node.home)).request<T>('GET', path)
}

async function post<T = any> (node: TestNode, path: string, body: unknown): Promise<T> {
  return await ApiClient.forHome(new Home(node.home)).request<T>('POST', path, body)
}

const peersOf = async (node: TestNode): Promise<Array<{ peerId: string, role: string }>> => await read(node, '/peers')

async function text (page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).textContent()) ?? ''
}

/** Rows of the page's peer table: peer id, role, link kind, remote addresses of its connections. */
async function peerRows (page: Page): Promise<Array<{ peer: string, role: string, link: string, addrs: string }>> {
  return await page.$$eval('#peers tbody tr', rows => rows.map(r => ({
    peer: (r as HTMLElement).dataset.peer ?? '',
    role: (r as HTMLElement).dataset.role ?? '',
    link: (r as HTMLElement).dataset.link ?? '',
    addrs: r.querySelector('td.addr')?.textContent ?? ''
  })))
}

async function homes (page: Page): Promise<string[]> {
  return await page.$$eval('#homes li[data-peer]', items => items.map(i => (i as HTMLElement).dataset.peer ?? ''))
}

async function send (page: Page, message: string): Promise<void> {
  await page.fill('#chat-input', message)
  await page.click('#chat-form button')
}

const { chromium } = capabilities()

describe.skipIf(chromium.missing !== undefined)(titled('the hyphae web client in Chromium, with three real nodes', chromium), () => {
  // dedicated sclerotia, as an operator pins them: they serve the client and relay for pages
  const cluster = new Cluster({ node: () => ({ startArgs: ['--http-port', '0', '--role', 'sclerotium'] }) })
  const browsers: TestBrowser[] = []
  let nodes: TestNode[]
  let networkId: string
  let page1: Page
  let page2: Page
  let page1Id: string
  let page2Id: string

  const openWithInvite = async (): Promise<Page> => {
    const url = (await nodes[0].cli(['network', 'invite', '--browser'])).stdout.trim()
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#invite=myc1\./)
    const browser = await openBrowser()
    browsers.push(browser)
    const page = browser.context.pages()[0] ?? await browser.context.newPage()
    await page.goto(url)
    return page
  }

  beforeAll(async () => {
    mkdirSync(RESULTS, { recursive: true })
    const bundle = await buildBrowserClient()
    expect(bundle.gzipBytes).toBeLessThan(600 * 1024)
    nodes = await cluster.startNetwork(3)
    await waitFor(async () => {
      for (const n of nodes) if ((await peersOf(n)).length < 2) return false
      return true
    }, { timeoutMs: 30_000, what: 'a full mesh' })
    networkId = (await read(nodes[0], '/status')).networkId
  }, 120_000)

  afterAll(async () => {
    await Promise.all(browsers.map(async b => { await b.close() }))
    await cluster.destroy()
  })

  it('sclerotia serve the client on their public HTTP port; only the administrator node issues browser invites', async () => {
    const { httpUrl } = await read(nodes[1], '/status')
    expect(httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const index = await fetch(httpUrl)
    expect(index.status).toBe(200)
    expect(index.headers.get('content-type')).toMatch(/text\/html/)
    expect(await index.text()).toContain('<script type="module" src="app.js">')
    const app = await fetch(new URL('app.js', httpUrl))
    expect(app.headers.get('content-type')).toMatch(/javascript/)
    expect((await app.arrayBuffer()).byteLength).toBeGreaterThan(100_000)
    expect((await fetch(new URL('../home/.mycelium/node.key', httpUrl))).status).toBe(404)
    const refused = await nodes[1].cli(['network', 'invite', '--browser'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/root key/)
  })

  it('a page opened with an invite link becomes a hyphae member and shows every node with its role', async () => {
    const status = await read(nodes[0], '/status')
    expect(status.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    page1 = await openWithInvite()
    await page1.waitForFunction(() => document.querySelector('#phase')?.textContent === 'online', undefined, { timeout: 20_000 })
    page1Id = await text(page1, '#self-id')
    expect(page1Id).toMatch(/^12D3KooW/)
    expect(await text(page1, '#self-role')).toBe('hyphae')
    expect(await text(page1, '#network-id')).toBe(networkId)
    // the single-use invite is taken out of the address bar
    expect(page1.url()).not.toContain('invite=')
    await waitFor(async () => {
      const rows = await peerRows(page1)
      return nodes.every(n => rows.some(r => r.peer === n.peerId && r.role === 'sclerotium'))
    }, { timeoutMs: 15_000, what: 'all three nodes with their roles on the page' })
    for (const n of nodes) expect(await page1.locator(`#graph g[data-peer="${n.peerId}"][data-role="sclerotium"]`).count()).toBe(1)
    // multi-homed: two sclerotia at once
    await waitFor(async () => (await homes(page1)).length === 2, { timeoutMs: 15_000, what: 'two sclerotia links' })
    // the nodes see the page as a member with the hyphae role
    await waitFor(async () => (await peersOf(nodes[0])).some(p => p.peerId === page1Id && p.role === 'hyphae'), { timeoutMs: 10_000, what: 'the node to list the page as hyphae' })
    // the certificate binds the page's key and is short-lived: 12 h
    expect(await text(page1, '#cert-expiry')).toMatch(/valid until/)
    const member = (await nodes[0].cliJson(['network', 'members'])).find((m: any) => m.peerId === page1Id)
    expect(Date.parse(member.expiresAt) - Date.parse(member.issuedAt)).toBe(12 * 3600_000)
  })

  it('two pages open a direct WebRTC connection and talk on a gossip topic, with the CLI too', async () => {
    expect((await nodes[1].cli(['gossip', 'sub', 'chat'])).code).toBe(0)
    page2 = await openWithInvite()
    await page2.waitForFunction(() => document.querySelector('#phase')?.textContent === 'online', undefined, { timeout: 20_000 })
    page2Id = await text(page2, '#self-id')
    const direct = await waitFor(async () => {
      for (const [page, other] of [[page1, page2Id], [page2, page1Id]] as const) {
        // the link shows before the roster over it says what the other page is
        const row = (await peerRows(page)).find(r => r.peer === other && r.link === 'webrtc' && r.role !== 'unknown')
        if (row !== undefined) return row
      }
      return undefined
    }, { timeoutMs: 30_000, what: 'a WebRTC connection between the pages' })
    expect(direct.role).toBe('hyphae')
    expect(direct.addrs).toContain('/webrtc')
    // the direct link is a WebRTC one, not only the relayed circuit used to set it up
    expect(direct.addrs.split('\n').some(a => a.includes('/webrtc'))).toBe(true)

    for (const page of [page1, page2]) await waitFor(async () => /^[2-9]/.test(await text(page, '#chat-subscribers')), { timeoutMs: 20_000, what: 'the pages to see the other subscribers' })
    await send(page1, 'hello from page one')
    await page2.waitForFunction(() => document.querySelector('#chat-messages')?.textContent?.includes('hello from page one'), undefined, { timeout: 10_000 })
    await waitFor(async () => (await read(nodes[1], '/gossip/messages?topic=chat')).some((m: any) => m.text === 'hello from page one' && m.from === page1Id), { timeoutMs: 10_000, what: 'the node to receive the page\'s message' })
    await send(page2, 'hello back from page two')
    await page1.waitForFunction(() => document.querySelector('#chat-messages')?.textContent?.includes('hello back from page two'), undefined, { timeout: 10_000 })
    expect((await nodes[1].cli(['gossip', 'pub', 'chat', 'hello pages, from the CLI'])).code).toBe(0)
    for (const page of [page1, page2]) await page.waitForFunction(() => document.querySelector('#chat-messages')?.textContent?.includes('hello pages, from the CLI'), undefined, { timeout: 10_000 })
    await page1.screenshot({ path: join(RESULTS, 'browser-client.png'), fullPage: true })
  })

  it('the page lists the latent spore entries gossiped to it, checked with the spores codec, and filters them', async () => {
    // page two's arrival made the sclerotia publish signed connection records
    await page1.waitForSelector('#spores li[data-type]', { timeout: 20_000 })
    const types = await page1.$$eval('#spores li[data-type]', items => items.map(i => (i as HTMLElement).dataset.type ?? ''))
    expect(types.length).toBeGreaterThan(0)
    expect(await text(page1, '#spore-count')).toMatch(/^\(\d+ of \d+/)
    expect(await text(page1, '#spore-count')).not.toMatch(/rejected/)
    await page1.selectOption('#spore-type', types[0])
    await waitFor(async () => (await page1.$$eval('#spores li[data-type]', items => items.map(i => (i as HTMLElement).dataset.type))).every(t => t === types[0]), { timeoutMs: 5_000, what: 'the type filter' })
    await page1.fill('#spore-filter', 'no-entry-has-this-text')
    await page1.waitForFunction(() => document.querySelector('#spores')?.textContent?.includes('no entry matches the filter'), undefined, { timeout: 5_000 })
    await page1.fill('#spore-filter', '')
    await page1.selectOption('#spore-type', '')
  })

  it('a page presenting a certificate that is not its own is refused and connects to nothing', async () => {
    const victim = new Home(nodes[1].home).loadChain()!
    const status = await read(nodes[0], '/status')
    const browser = await openBrowser()
    browsers.push(browser)
    const stored = encodeStoredMembership({ networkId, networkName: status.networkName, rootPublicKey: new Home(nodes[0].home).loadNetwork()!.rootPublicKey, chain: victim, sclerotia: (status.addrs as string[]).filter(a => a.includes('/ws/')) })
    await browser.context.addInitScript(([key, value]) => { window.localStorage.setItem(key, value) }, [MEMBERSHIP_STORAGE_KEY, stored])
    const page = browser.context.pages()[0] ?? await browser.context.newPage()
    await page.goto(status.httpUrl)
    await page.waitForFunction(() => document.querySelector('#phase')?.textContent === 'refused', undefined, { timeout: 20_000 })
    expect(await text(page, '#events')).toMatch(/certificate is for another key/)
    const pageId = await text(page, '#self-id')
    await waitFor(async () => (await read(nodes[0], '/rejected')).some((r: any) => r.peerId === pageId && /another key/.test(r.reason)), { timeoutMs: 10_000, what: 'the node to record the refusal' })
    expect((await peerRows(page)).filter(r => r.link !== 'none')).toEqual([])
    expect(await homes(page)).toEqual([])
    expect((await peersOf(nodes[0])).map(p => p.peerId)).not.toContain(pageId)
    await browser.close()
  })

  it('a page without an invite asks to join; the operator approves it with the code the page shows', async () => {
    // the network holds an entry before the page opens: gossip will not bring it again
    expect((await nodes[0].cli(['spores', 'publish-service', 'opened-late', 'tcp://10.0.0.9:80'])).code).toBe(0)
    // three sclerotia certify no epoch (a committee is 3f+1 = 4): the page must still ask for
    // the latest one as soon as it is homed, and show it where there is one
    const epoch: number = (await read(nodes[0], '/spores/epochs?limit=1').catch(() => undefined))?.latest ?? -1
    const browser = await openBrowser()
    browsers.push(browser)
    const page = browser.context.pages()[0] ?? await browser.context.newPage()
    await page.goto((await read(nodes[0], '/status')).httpUrl)
    await page.waitForFunction(() => document.querySelector('#phase')?.textContent === 'not-a-member', undefined, { timeout: 15_000 })
    expect(await page.locator('#ask-join').isVisible()).toBe(true)
    await page.click('#ask-join')
    await page.waitForSelector('#join-code', { timeout: 10_000 })
    const code = await text(page, '#join-code')
    const pageId = await text(page, '#self-id')
    // drawn by the node at random, not taken from the page's peer id
    expect(code).toMatch(/^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$/)
    expect(code).not.toContain(pageId.slice(-4).toUpperCase())
    const status = await nodes[0].cli(['status'])
    expect(status.stdout).toContain(`browser ${code} asks to join from 127.0.0.1 (${pageId}): if the tab shows this code, approve with mycelium network approve ${code}`)
    expect((await nodes[0].cli(['network', 'approve', pageId.slice(-6)])).code).not.toBe(0)
    const approved = await nodes[0].cli(['network', 'approve', code])
    expect(approved.code).toBe(0)
    expect(approved.stdout).toContain(pageId)
    await page.waitForFunction(() => document.querySelector('#phase')?.textContent === 'online', undefined, { timeout: 20_000 })
    const onlineAt = Date.now()
    expect(await text(page, '#cert-expiry')).toMatch(/valid until/)

    // the page shows the network as it is on opening: the entry from before, the latest epoch asked for at once
    await page.fill('#spore-filter', 'opened-late')
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#spores li[data-type]')).some(li => li.textContent?.includes('opened-late')), undefined, { timeout: 5_000 })
    await page.waitForFunction(() => /^\(from …/.test(document.querySelector('#epoch-source')?.textContent ?? ''), undefined, { timeout: 5_000 })
    if (epoch >= 0) await page.waitForFunction((n) => Array.from(document.querySelectorAll('#epochs li')).some(li => Number(/^epoch (\d+)/.exec(li.textContent ?? '')?.[1] ?? -1) >= n), epoch, { timeout: 5_000 })
    // the page polls epochs every 10 s: earlier than that, only the catch-up can have asked
    expect(Date.now() - onlineAt).toBeLessThan(5_000)
    await page.fill('#spore-filter', '')
    await browser.close()
  })

  it('revoking a page disconnects it from every member, its direct WebRTC link included', async () => {
    expect((await nodes[0].cli(['network', 'revoke', page2Id])).code).toBe(0)
    await page2.waitForFunction(() => document.querySelector('#phase')?.textContent === 'revoked', undefined, { timeout: 15_000 })
    expect(await text(page2, '#problem')).toMatch(/revoked/)
    await waitFor(async () => !(await peerRows(page1)).some(r => r.peer === page2Id && r.link !== 'none'), { timeoutMs: 10_000, what: 'page one to drop its link to the revoked page' })
    expect(await text(page1, '#events')).toMatch(/was revoked/)
    await waitFor(async () => !(await peersOf(nodes[1])).some(p => p.peerId === page2Id), { timeoutMs: 10_000, what: 'the nodes to drop the revoked page' })
  })

  it('when the page\'s sclerotium is killed, the page fails over to the others within 10 s without a reload', async () => {
    const before = await homes(page1)
    expect(before).toContain(nodes[0].peerId)
    const killedAt = Date.now()
    await nodes[0].kill()
    await waitFor(async () => {
      const now = await homes(page1)
      return now.length === 2 && !now.includes(nodes[0].peerId)
    }, { timeoutMs: 10_000, intervalMs: 200, what: 'the page to be homed on the two remaining sclerotia' })
    expect(Date.now() - killedAt).toBeLessThan(10_000)
    expect(await text(page1, '#phase')).toBe('online')
    expect(await text(page1, '#events')).toMatch(/lost sclerotium/)
    expect((await nodes[2].cli(['gossip', 'sub', 'chat'])).code).toBe(0)
    await waitFor(async () => {
      await post(nodes[2], '/gossip/publish', { topic: 'chat', message: 'still there after failover?' })
      return (await text(page1, '#chat-messages')).includes('still there after failover?')
    }, { timeoutMs: 15_000, intervalMs: 1_000, what: 'a message to reach the page after failover' })
    await page1.screenshot({ path: join(RESULTS, 'browser-client-failover.png'), fullPage: true })
  })
})
