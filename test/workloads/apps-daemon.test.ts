// Applications on real daemons: four sclerotia that certify primary epochs (f = 1). The
// administrator packs, publishes and plans a service; placement starts it on two nodes; any
// sclerotium's gateway reaches it over the mesh; a host killed with SIGKILL has its instance
// started elsewhere; a tampered bundle, a bundle signed by a member without a grant and a plan
// from such a member are refused; an operator grant lets a member plan; `app rm` stops it all.
import { describe, it, expect, afterAll } from 'vitest'
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, waitFor, type TestNode } from '../harness/index.ts'
import { startSclerotia, waitForEpoch } from '../consensus/bft-daemon-nodes.ts'
import { packBundle, parseManifest } from '../../workloads/bundle/index.ts'
import { randomSecretKey } from '../../crypto/index.ts'
import { helloModule } from './wasm-modules.ts'

interface Instance { peerId: string, health: string, digest: string }
interface AppStatus { name: string, digest: string, certified: boolean, instances: Instance[], hosts: string[] }

const SERVER = `
import { createServer } from 'node:http'
const hits = { n: 0 }
createServer((req, res) => {
  if (req.url === '/health') { res.writeHead(200).end('ok'); return }
  hits.n++
  let body = ''
  req.on('data', c => { body += c })
  req.on('end', () => { res.writeHead(200, { 'content-type': 'text/plain', 'x-app': 'hello' }).end('hello ' + req.method + ' ' + req.url + ' ' + body) })
}).listen(Number(process.env.PORT), '127.0.0.1')
`

function appDir (version: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'myc-app-'))
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'hello', version, kind: 'service', command: 'node', args: ['server.mjs'], resources: { cpuMillis: 200, memoryMb: 128 }, health: { http: '/health' } }))
  writeFileSync(join(dir, 'server.mjs'), SERVER)
  return dir
}

async function statusOf (node: TestNode, name = 'hello'): Promise<AppStatus | undefined> {
  try {
    return await node.api<AppStatus>(`/apps/status?name=${name}`)
  } catch {
    return undefined
  }
}

function healthy (s: AppStatus | undefined, digest: string): string[] {
  return (s?.instances ?? []).filter(i => i.health === 'healthy' && i.digest === digest).map(i => i.peerId)
}

async function gateway (node: TestNode, path: string, init?: RequestInit): Promise<Response> {
  const { httpUrl } = await node.status()
  return await fetch(new URL(path, httpUrl), { ...init, signal: AbortSignal.timeout(20_000) })
}

describe('applications on four sclerotium daemons', () => {
  const cluster = new Cluster({ node: (i) => ({ startArgs: ['--role', 'sclerotium', '--epoch-interval-s', '2', '--bft-f', '1', '--http-listen', '127.0.0.1:0', '--label', `zone=z${i % 2}`] }) })
  afterAll(async () => { await cluster.destroy() })
  let nodes: TestNode[]
  let digest: string

  it('packs, publishes and plans a service; two nodes run it and every gateway reaches it', async () => {
    nodes = await startSclerotia(cluster, 4)
    const [admin] = nodes
    // a plan made before the first certified epoch runs from the latent spore (not certified)
    await waitForEpoch([admin], 1, 90_000)
    const out = join(mkdtempSync(join(tmpdir(), 'myc-spore-')), 'hello.spore')
    const packed = await admin.cli(['app', 'pack', appDir('1.0.0'), '--out', out])
    expect(packed.code, packed.stderr).toBe(0)
    expect(packed.stdout.trim()).toBe(out)
    const published = await admin.cliJson<{ digest: string }>(['app', 'publish', out])
    digest = published.digest
    expect(digest).toMatch(/^[0-9a-f]{64}$/)
    const planned = await admin.cli(['app', 'plan', 'hello', '--digest', digest, '--min', '2', '--max', '3'])
    expect(planned.code, planned.stderr).toBe(0)

    const t0 = Date.now()
    await waitFor(async () => healthy(await statusOf(nodes[1]), digest).length === 2, { timeoutMs: 60_000, intervalMs: 500, what: 'two healthy instances of hello' })
    console.log(`plan → 2 healthy instances: ${Date.now() - t0} ms`)
    const status = (await statusOf(nodes[2]))!
    expect(status.certified).toBe(true)
    expect(healthy(status, digest).sort()).toEqual([...status.hosts].sort())

    // every gateway reaches both instances in turn (once its view, refreshed every 2 s, has both)
    const both = healthy(status, digest).sort()
    for (const node of nodes) {
      const seen = new Set<string>()
      await waitFor(async () => {
        const r = await gateway(node, '/app/hello/echo?q=1', { method: 'POST', body: 'spore' })
        if (r.status !== 200) return false
        expect(await r.text()).toBe('hello POST /echo?q=1 spore')
        expect(r.headers.get('x-app')).toBe('hello')
        seen.add(r.headers.get('x-mycelium-instance') ?? '')
        return seen.size === both.length
      }, { timeoutMs: 20_000, intervalMs: 100, what: `the gateway of ${node.name} reaching both instances` })
      expect([...seen].sort()).toEqual(both)
    }
    expect((await gateway(nodes[0], '/app/nothing-here/')).status).toBe(404)
    expect((await gateway(nodes[0], '/app/..%2f/')).status).toBe(404)

    const ls = await admin.cli(['app', 'ls'])
    expect(ls.stdout).toMatch(/hello\s+service\s+2-3 wanted, 2 healthy/)
    // the bundle a plan names is kept, and app ls says what this node holds and removed
    expect(ls.stdout).toMatch(/bundles here: [1-9]\d* \([\d.]+ MiB\); 0 removed since start/)
    const bundles = await admin.api<{ held: Array<{ digest: string, kept?: string }> }>('/apps/bundles')
    expect(bundles.held.find(b => b.digest === digest)?.kept).toBe('plan hello')
    const human = await admin.cli(['app', 'status', 'hello'])
    expect(human.stdout).toMatch(/limits here|hosts by placement/)
  })

  it('refuses a tampered bundle, a stranger\'s bundle and a plan from a member without a grant', async () => {
    const [admin, member] = nodes
    const file = join(mkdtempSync(join(tmpdir(), 'myc-spore-')), 'x.spore')
    const good = readFileSync((await admin.cli(['app', 'pack', appDir('1.0.1'), '--out', file])).stdout.trim())
    const tampered = new Uint8Array(good)
    tampered[Math.floor(tampered.length / 2)] ^= 0x20
    writeFileSync(file, tampered)
    const r1 = await admin.cli(['app', 'publish', file])
    expect(r1.code).not.toBe(0)
    expect(r1.stderr).toMatch(/not a valid bundle/)

    const dir = appDir('6.6.6')
    const files = [{ path: 'server.mjs', bytes: readFileSync(join(dir, 'server.mjs')), executable: false }]
    writeFileSync(file, packBundle({ manifest: parseManifest(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))), files, secretKey: randomSecretKey() }))
    const r2 = await member.cli(['app', 'publish', file])
    expect(r2.code).not.toBe(0)
    expect(r2.stderr).toMatch(/neither this network's root key nor an operator/)

    const r3 = await member.cli(['app', 'plan', 'hello', '--digest', digest, '--min', '4'])
    expect(r3.code).not.toBe(0)
    expect(r3.stderr).toMatch(/may not plan applications/)
    const r4 = await member.cli(['app', 'pack', dir, '--out', file])
    expect(r4.code).not.toBe(0)
    expect(r4.stderr).toMatch(/neither the network root key nor an operator grant/)
    // a bundle for an architecture no node here has: the plan is refused with the reason
    const armDir = mkdtempSync(join(tmpdir(), 'myc-arm-'))
    mkdirSync(join(armDir, 'bin'))
    writeFileSync(join(armDir, 'manifest.json'), JSON.stringify({ name: 'armonly', version: '1.0.0', kind: 'service', binaries: { aarch64: 'bin/app' }, resources: { cpuMillis: 100, memoryMb: 16 } }))
    writeFileSync(join(armDir, 'bin/app'), '#!/bin/sh\nexit 0\n', { mode: 0o755 })
    const armFile = join(mkdtempSync(join(tmpdir(), 'myc-spore-')), 'arm.spore')
    expect((await admin.cli(['app', 'pack', armDir, '--out', armFile])).code).toBe(0)
    const { digest: arm } = await admin.cliJson<{ digest: string }>(['app', 'publish', armFile])
    const r5 = await admin.cli(['app', 'plan', 'armonly', '--digest', arm, '--min', '1'])
    expect(r5.code).not.toBe(0)
    expect(r5.stderr).toMatch(/no live node can run armonly: .*x64 \(the bundle runs on aarch64\)/)
    // and a plan of a digest nobody published
    const r6 = await admin.cli(['app', 'plan', 'hello', '--digest', 'ab'.repeat(32), '--min', '1'])
    expect(r6.code).not.toBe(0)
    expect(r6.stderr).toMatch(/is not on this node and could not be fetched/)
    // nothing changed
    expect(healthy(await statusOf(admin), digest)).toHaveLength(2)
  })

  it('starts the instance of a host killed with SIGKILL elsewhere', async () => {
    const before = (await statusOf(nodes[0]))!
    const victim = nodes.find(n => n !== nodes[0] && healthy(before, digest).includes(n.peerId)) ?? nodes.find(n => healthy(before, digest).includes(n.peerId))!
    const witness = nodes.find(n => n !== victim)!
    const t0 = Date.now()
    await victim.kill()
    await waitFor(async () => {
      const h = healthy(await statusOf(witness), digest)
      return h.length === 2 && !h.includes(victim.peerId)
    }, { timeoutMs: 60_000, intervalMs: 250, what: 'two healthy instances without the killed host' })
    console.log(`SIGKILL of a host → 2 healthy instances again: ${Date.now() - t0} ms`)
    // the gateway's view follows the endpoint records within a refresh (2 s)
    await waitFor(async () => (await gateway(witness, '/app/hello/')).status === 200, { timeoutMs: 10_000, intervalMs: 250, what: 'the gateway answering after the kill' })
    for (let i = 0; i < 4; i++) {
      const r = await gateway(witness, '/app/hello/')
      expect(r.status).toBe(200)
      expect(r.headers.get('x-mycelium-instance')).not.toBe(victim.peerId)
    }
  })

  it('runs a WebAssembly job once, on one node that carries its label, and records its exit code and output', async () => {
    const [admin] = nodes
    const dir = mkdtempSync(join(tmpdir(), 'myc-job-'))
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name: 'greet', version: '1.0.0', kind: 'job', wasm: 'hello.wasm', resources: { cpuMillis: 100, memoryMb: 16 }, placement: { labels: { zone: 'z1' } } }))
    writeFileSync(join(dir, 'hello.wasm'), helloModule())
    const file = join(mkdtempSync(join(tmpdir(), 'myc-spore-')), 'greet.spore')
    expect((await admin.cli(['app', 'pack', dir, '--out', file])).code).toBe(0)
    const { digest: job } = await admin.cliJson<{ digest: string }>(['app', 'publish', file])
    expect((await admin.cli(['app', 'plan', 'greet', '--digest', job, '--min', '1', '--arch', 'any'])).code).toBe(0)
    let done: Instance & { exitCode?: number } | undefined
    await waitFor(async () => {
      done = (await statusOf(admin, 'greet'))?.instances.find(i => i.health === 'done')
      return done !== undefined
    }, { timeoutMs: 60_000, intervalMs: 500, what: 'the job done' })
    expect(done!.exitCode).toBe(3)
    const ran = nodes.find(n => n.peerId === done!.peerId)!
    expect(nodes.indexOf(ran) % 2).toBe(1)
    expect((await ran.cli(['app', 'logs', 'greet'])).stdout).toBe('hello\n')
    // from any node: the administrator's reads it over the mesh; a member without a grant may not
    expect((await admin.cli(['app', 'logs', 'greet'])).stdout).toBe('hello\n')
    const other = nodes.find(n => n !== ran && n !== admin && n.running())!
    const refused = await other.cli(['app', 'logs', 'greet'])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/needs the network root key or an operator grant/)
    // it is not run again elsewhere
    await new Promise(resolve => setTimeout(resolve, 5000))
    expect((await statusOf(admin, 'greet'))!.instances).toHaveLength(1)
  })

  it('an operator granted by the root plans; app rm stops every instance', async () => {
    const [admin] = nodes
    const member = nodes.find(n => n !== admin && n.running())!
    const token = (await admin.cli(['network', 'grant-operator', member.peerId, '--ttl', '1d'])).stdout.trim()
    expect(token).toMatch(/^mycop1\./)
    expect((await member.cli(['app', 'use-grant', token])).code).toBe(0)
    const planned = await member.cli(['app', 'plan', 'hello', '--digest', digest, '--min', '1', '--max', '1'])
    expect(planned.code, planned.stderr).toBe(0)
    await waitFor(async () => healthy(await statusOf(admin), digest).length === 1, { timeoutMs: 60_000, intervalMs: 500, what: 'one instance after the operator\'s plan' })

    expect((await admin.cli(['app', 'rm', 'hello'])).code).toBe(0)
    await waitFor(async () => (await statusOf(admin))?.instances.length === 0, { timeoutMs: 60_000, intervalMs: 500, what: 'no instance after app rm' })
    // the gateway's view of the plans follows within a few seconds
    await waitFor(async () => (await gateway(admin, '/app/hello/')).status === 404, { timeoutMs: 20_000, intervalMs: 500, what: 'the gateway forgetting hello' })
  })
})
