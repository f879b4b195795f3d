import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, TestNode, waitFor, NODE, REPO_ROOT } from '../harness/index.ts'
import { signEntry, signerOf } from '../../spores/index.ts'
import { ApiClient } from '../../node/api/index.ts'
import { Home } from '../../node/home/index.ts'
import { createInvite } from '../../node/network/index.ts'

// Polls go straight to the daemons' admin API (what the CLI calls) to spare a process per poll.
async function peers (node: TestNode): Promise<string[]> {
  return (await ApiClient.forHome(new Home(node.home)).request<Array<{ peerId: string }>>('GET', '/peers')).map(p => p.peerId)
}

async function status (node: TestNode): Promise<any> {
  return await ApiClient.forHome(new Home(node.home)).request('GET', '/status')
}

async function spores (node: TestNode): Promise<any> {
  return await ApiClient.forHome(new Home(node.home)).request('GET', '/spores/stats')
}

async function rejected (node: TestNode): Promise<Array<{ peerId: string, reason: string, kind: string }>> {
  return await ApiClient.forHome(new Home(node.home)).request('GET', '/rejected')
}

describe('operator CLI for network identity (real processes)', () => {
  const cluster = new Cluster()
  let nodes: TestNode[]
  const scratch = mkdtempSync(join(tmpdir(), 'myc-identity-'))

  beforeAll(async () => {
    nodes = await cluster.startNetwork(4)
    await waitFor(async () => (await Promise.all(nodes.map(peers))).every(p => p.length === 3), { timeoutMs: 30_000, intervalMs: 300, what: 'a full mesh' })
  }, 120_000)
  afterAll(async () => {
    await cluster.destroy()
    rmSync(scratch, { recursive: true, force: true })
  })

  it('lists the certificates the administrator issued', async () => {
    const members = await nodes[0].cliJson(['network', 'members'])
    expect(members.map((m: any) => m.peerId).sort()).toEqual(nodes.map(n => n.peerId).sort())
    const founder = members.find((m: any) => m.peerId === nodes[0].peerId)
    expect(founder.capabilities).toEqual(['issuer', 'member'])
    const member = members.find((m: any) => m.peerId === nodes[1].peerId)
    expect(member.capabilities).toEqual(['member'])
    expect(Date.parse(member.expiresAt)).toBeGreaterThan(Date.parse(member.issuedAt))
    expect(members.every((m: any) => m.revoked === false)).toBe(true)
    const elsewhere = await nodes[1].cli(['network', 'members'])
    expect(elsewhere.code).toBe(1)
    expect(elsewhere.stderr).toMatch(/does not hold the root key/)
  })

  it('a revoked member is disconnected everywhere within 10 s, cannot come back, and later members learn it', async () => {
    const [admin, a, b, victim] = nodes
    const revoked = await admin.cliJson(['network', 'revoke', victim.peerId])
    expect(revoked.peerId).toBe(victim.peerId)
    await waitFor(async () => {
      for (const n of [admin, a, b]) if ((await peers(n)).includes(victim.peerId)) return false
      return (await peers(victim)).length === 0
    }, { timeoutMs: 10_000, intervalMs: 250, what: 'every node to drop the revoked member' })
    for (const n of [a, b]) expect((await status(n)).revoked).toBe(1)
    expect((await admin.cliJson(['network', 'members'])).find((m: any) => m.peerId === victim.peerId).revoked).toBe(true)

    // its old certificate no longer opens any door, even after a restart
    await victim.kill()
    await victim.start(['--bootstrap', (await status(a)).addrs[0]])
    // it dials its bootstrap and every member it remembers; each refuses it in the handshake,
    // which both ends finish (verified or refused) before a peer can be listed: once every
    // member and the victim itself have recorded the refusal, no attempt is still under way
    const refusedBy = async (n: TestNode, peerId: string): Promise<boolean> => (await rejected(n)).some(r => r.peerId === peerId && /revoked/.test(r.reason))
    await waitFor(async () => (await Promise.all([admin, a, b].map(async n => await refusedBy(n, victim.peerId)))).every(Boolean), { timeoutMs: 15_000, what: 'every member to refuse the revoked node' })
    await waitFor(async () => (await Promise.all([admin, a, b].map(async n => await refusedBy(victim, n.peerId)))).every(Boolean), { timeoutMs: 15_000, what: 'the revoked node to record every refusal' })
    for (const n of [admin, a, b]) expect(await peers(n)).not.toContain(victim.peerId)
    expect(await peers(victim)).toEqual([])

    // a member that relays an entry the revoked key signed (after the revocation) changes nothing:
    // the spores refuse a revoked origin whoever passes its entries on
    const victimSigner = signerOf((await new Home(victim.home).loadOrCreateNodeKey()).raw.subarray(0, 32))
    const now = Date.now()
    const relayed = signEntry(victimSigner, { type: 'service', key: `${victim.peerId}/after-revocation`, value: { name: 'after-revocation', endpoints: ['/ip4/10.6.6.6/tcp/80'] }, seq: now, issuedAt: now })
    writeFileSync(join(scratch, 'relayed.hex'), Buffer.from(relayed.bytes).toString('hex') + '\n')
    const relay = cluster.newNode('relay')
    await cluster.join(relay, admin)
    const tcpAddrs = await Promise.all([admin, a, b].map(async n => (await status(n)).addrs.find((x: string) => x.includes('/tcp/') && !x.includes('/ws')) as string))
    await new Promise<void>((resolve, reject) => {
      execFile(NODE, [join(REPO_ROOT, 'test/spores/byzantine-member.ts'), '--home', relay.home, '--relay', join(scratch, 'relayed.hex'), ...tcpAddrs],
        { timeout: 60_000, encoding: 'utf8' }, (err, _stdout, stderr) => { if (err !== null) reject(new Error(`${err.message}\n${stderr}`)); else resolve() })
    })
    for (const n of [admin, a, b]) {
      await waitFor(async () => ((await spores(n)).tiers.latent.service.rejections['unknown-origin'] ?? 0) > 0, { timeoutMs: 10_000, what: `${n.name} to refuse the revoked origin's entry` })
      const all = await ApiClient.forHome(new Home(n.home)).request<any[]>('GET', '/spores?type=service')
      expect(all.some(e => e.origin === victim.peerId && e.key.endsWith('/after-revocation'))).toBe(false)
    }

    // a member that joins afterwards learns the revocation on connecting
    const late = cluster.newNode('late')
    await cluster.join(late, admin)
    await late.start()
    await waitFor(async () => (await status(late)).revoked === 1, { timeoutMs: 15_000, what: 'the new member to learn the revocation' })
    await victim.stop()
  })

  it('a member whose certificate runs out while connected is disconnected by every node and refused from then on', async () => {
    const [admin, a, b] = nodes
    const adminAddr = (await status(admin)).addrs.find((x: string) => x.includes('/tcp/') && !x.includes('/ws')) as string
    // an invite whose certificate lasts 15 s (browser invites are made the same way)
    const token = createInvite(new Home(admin.home), { ttlMs: 60_000, uses: 1, certificateTtlMs: 15_000, bootstrap: [adminAddr] })
    const brief = cluster.newNode('brief')
    expect((await brief.cli(['join', token])).code).toBe(0)
    const expiresAt = new Home(brief.home).loadChain()![0].expiresAt
    await brief.start()
    await waitFor(async () => (await Promise.all([admin, a, b].map(peers))).every(p => p.includes(brief.peerId)), { timeoutMs: 10_000, intervalMs: 250, what: 'the short-lived member to be connected' })
    expect(Date.now()).toBeLessThan(expiresAt)
    // the handshake passed; the certificate then runs out with the connections open
    await waitFor(async () => {
      for (const n of [admin, a, b]) if ((await peers(n)).includes(brief.peerId)) return false
      return (await peers(brief)).length === 0
    }, { timeoutMs: expiresAt - Date.now() + 10_000, intervalMs: 250, what: 'every node to close the expired member\'s connections' })
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt)
    // it keeps dialling the members it knows: each refuses it as expired
    await waitFor(async () => (await rejected(admin)).some((r: any) => r.peerId === brief.peerId && r.kind === 'expired'), { timeoutMs: 15_000, what: 'the expired member to be refused as expired' })
    await brief.stop()
  })

  it('exports the root key under a passphrase and imports it elsewhere; a wrong passphrase writes nothing', async () => {
    const file = join(scratch, 'root.key')
    const exported = await nodes[0].cli(['network', 'export-key', file], { env: { MYCELIUM_PASSPHRASE: 'correct horse battery' } })
    expect(exported.code).toBe(0)
    expect(readFileSync(file, 'utf8')).not.toMatch(JSON.parse(readFileSync(join(nodes[0].home, 'network-root.key'), 'utf8')).secretKey)
    const again = await nodes[0].cli(['network', 'export-key', file], { env: { MYCELIUM_PASSPHRASE: 'correct horse battery' } })
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/already exists/)

    const fresh = new TestNode({ name: 'admin2', home: join(scratch, 'admin2') })
    const wrong = await fresh.cli(['network', 'import-key', file], { env: { MYCELIUM_PASSPHRASE: 'wrong horse battery' } })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/wrong passphrase/)
    expect(existsSync(join(fresh.home, 'network-root.key'))).toBe(false)
    expect(existsSync(join(fresh.home, 'network.json'))).toBe(false)

    const member = nodes[2]
    const ok = await member.cli(['network', 'import-key', file, '--json'], { env: { MYCELIUM_PASSPHRASE: 'correct horse battery' } })
    expect(ok.code).toBe(0)
    expect(JSON.parse(ok.stdout).networkId).toBe((await status(nodes[0])).networkId)
    expect((await member.cli(['network', 'members'])).code).toBe(0)

    const other = new TestNode({ name: 'other', home: join(scratch, 'other') })
    expect((await other.cli(['network', 'create', 'elsewhere'])).code).toBe(0)
    const mismatch = await other.cli(['network', 'import-key', file], { env: { MYCELIUM_PASSPHRASE: 'correct horse battery' } })
    expect(mismatch.code).toBe(1)
    expect(mismatch.stderr).toMatch(/nothing was imported/)
  })

  it('rotate-invites makes an outstanding invite fail with a clear message', async () => {
    const invite = await cluster.invite(nodes[0])
    const rotated = await nodes[0].cliJson(['network', 'rotate-invites'])
    expect(rotated.invalidated).toBeGreaterThanOrEqual(1)
    const joiner = new TestNode({ name: 'joiner', home: join(scratch, 'joiner') })
    const r = await joiner.cli(['join', invite])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/no longer valid.*rotate-invites/)
    expect(existsSync(join(joiner.home, 'network.json'))).toBe(false)
  })
})
