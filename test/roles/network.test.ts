import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RoleService, libp2pRoleEffects, loadHardwareProfile, type BuiltInProfileName, type RoleOverride, type Role } from '../../roles/index.ts'
import { startNode, waitFor, quietLog, ROLE_TOPIC, type RoleTestNode } from './nodes.ts'

interface Member { node: RoleTestNode, roles: RoleService, profile: BuiltInProfileName, stopped: boolean }

const timing = { advertiseIntervalMs: 500, settleMs: 1_500, confirmMs: 800, suspectGraceMs: 300, hysteresisMs: 60_000, powerPollIntervalMs: 60_000, hardwareIntervalMs: 60_000 }

describe('roles across real libp2p nodes', () => {
  const members: Member[] = []
  let dataDir: string | undefined

  afterEach(async () => {
    await Promise.all(members.splice(0).filter(m => !m.stopped).map(async m => { await m.roles.stop(); await m.node.stop() }))
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
  })

  async function join1 (profile: BuiltInProfileName, override: RoleOverride = 'auto'): Promise<Member> {
    dataDir ??= mkdtempSync(join(tmpdir(), 'mycelium-roles-'))
    const { node, secretKey } = await startNode()
    const roles = new RoleService({
      host: node,
      pubsub: node.services.pubsub,
      secretKey,
      topic: ROLE_TOPIC,
      effects: libp2pRoleEffects({ dht: node.services.dht, relay: node.services.relay }),
      dataDir,
      override,
      profile: loadHardwareProfile(profile),
      log: quietLog,
      timing
    })
    const member = { node, roles, profile, stopped: false }
    members.push(member)
    return member
  }

  async function stop (m: Member): Promise<void> {
    m.stopped = true
    await m.roles.stop()
    await m.node.stop()
  }

  const live = (): Member[] => members.filter(m => !m.stopped)
  const withRole = (role: Role): Member[] => live().filter(m => m.roles.status().role === role)

  it('converges to the target number of sclerotia, holds it, applies roles at runtime and replaces a lost sclerotium', async () => {
    const profiles: BuiltInProfileName[] = ['server-kvm', 'server-kvm', 'raspberry-pi-4', 'raspberry-pi-4', 'raspberry-pi-4', 'laptop-mains', 'pi-zero-2w', 'laptop-battery']
    for (const p of profiles) await join1(p)
    // a ring with chords: no node is a hub whose loss would split the gossip mesh
    await Promise.all(members.flatMap((m, i) => [1, 3].map(async d => await m.node.dial(members[(i + d) % members.length].node.getMultiaddrs()[0]))))
    await Promise.all(members.map(async m => { await m.roles.start() }))

    // 8 nodes → target max(3, round(√8)) = 3
    await waitFor(() => withRole('sclerotium').length === 3, 20_000, 'three sclerotia')
    const first = withRole('sclerotium')
    expect(first.filter(m => m.profile === 'server-kvm')).toHaveLength(2)
    expect(first.filter(m => m.profile === 'raspberry-pi-4')).toHaveLength(1)

    // holds without flapping: nobody changes again and every node sees the same three. A change
    // is taken on advice that held for confirmMs and is advertised at once, so once every node
    // has heard from every other an advertisement issued a confirmation period and two rounds
    // after convergence, any change still pending at convergence would have been made and heard.
    const sclerotiaIds = first.map(m => m.node.peerId.toString()).sort()
    const changesAtConvergence = members.map(m => m.roles.status().changes)
    const heardAfter = Date.now() + timing.confirmMs + 2 * timing.advertiseIntervalMs
    await waitFor(() => members.every(m => members.every(o => o === m || (m.roles.advertisements().find(a => a.peerId === o.node.peerId.toString())?.issuedAt ?? 0) >= heardAfter)), 10_000, 'advertisements from every node issued after the hold window')
    expect(members.map(m => m.roles.status().changes)).toEqual(changesAtConvergence)
    expect(withRole('sclerotium').map(m => m.node.peerId.toString()).sort()).toEqual(sclerotiaIds)
    expect(members.every(m => m.roles.status().changes <= 1)).toBe(true)
    for (const m of members) {
      const seen = m.roles.advertisements().filter(a => a.role === 'sclerotium').map(a => a.peerId)
      const self = m.roles.status().role === 'sclerotium' ? [m.node.peerId.toString()] : []
      expect([...seen, ...self].sort()).toEqual(sclerotiaIds)
    }

    // roles act on the running node
    for (const m of members) {
      const role = m.roles.status().role
      expect(m.node.services.dht.getMode()).toBe(role === 'hyphae' ? 'client' : 'server')
      expect(m.node.services.relay.mode).toBe(role === 'sclerotium' ? 'full' : role === 'rhizomorph' ? 'limited' : 'off')
    }
    expect(members.find(m => m.profile === 'pi-zero-2w')?.roles.status().role).toBe('hyphae')
    expect(members.find(m => m.profile === 'laptop-battery')?.roles.status().role).toBe('hyphae')
    expect(members.find(m => m.profile === 'laptop-mains')?.roles.status().role).toBe('rhizomorph')

    // a sclerotium stops: the best remaining rhizomorph (a Pi) takes its place
    const lost = first.find(m => m.profile === 'server-kvm') as Member
    const stoppedAt = Date.now()
    await stop(lost)
    await waitFor(() => withRole('sclerotium').length === 3, 15_000, 'a replacement sclerotium')
    const replacementMs = Date.now() - stoppedAt
    const now = withRole('sclerotium')
    expect(now.filter(m => m.profile === 'raspberry-pi-4')).toHaveLength(2)
    expect(now.filter(m => m.profile === 'laptop-mains')).toHaveLength(0)
    expect(replacementMs).toBeLessThan(15_000)

    // an operator pin applies at once, without a restart
    const laptop = members.find(m => m.profile === 'laptop-mains') as Member
    await laptop.roles.setOverride('hyphae')
    expect(laptop.roles.status().role).toBe('hyphae')
    expect(laptop.node.services.dht.getMode()).toBe('client')
    expect(laptop.node.services.relay.mode).toBe('off')
  })

  it('keeps a hyphae anchored to two sclerotia and fails over within 5 s when one stops', async () => {
    const sclerotia = [await join1('server-kvm', 'sclerotium'), await join1('raspberry-pi-4', 'sclerotium'), await join1('raspberry-pi-4', 'sclerotium')]
    const phone = await join1('laptop-battery')
    // the hyphae knows only one sclerotium at first; the others come from advertisements
    for (let i = 0; i < sclerotia.length; i++) await sclerotia[i].node.dial(sclerotia[(i + 1) % sclerotia.length].node.getMultiaddrs()[0])
    await phone.node.dial(sclerotia[0].node.getMultiaddrs()[0])
    await Promise.all(members.map(async m => { await m.roles.start() }))

    expect(phone.roles.status().role).toBe('hyphae')
    await waitFor(() => phone.roles.anchors().length >= 2, 10_000, 'two anchors')
    const anchored = phone.roles.anchors()
    const victim = sclerotia.find(s => anchored.includes(s.node.peerId.toString())) as Member
    const spare = sclerotia.find(s => !anchored.includes(s.node.peerId.toString()))

    const stoppedAt = Date.now()
    await stop(victim)
    await waitFor(() => phone.roles.anchors().length >= 2 && !phone.roles.anchors().includes(victim.node.peerId.toString()), 5_000, 'failover to another sclerotium')
    expect(Date.now() - stoppedAt).toBeLessThan(5_000)
    if (spare !== undefined) expect(phone.roles.anchors()).toContain(spare.node.peerId.toString())

    // pinned sclerotia are dedicated and stay, whatever the balance says
    for (const s of sclerotia.filter(x => !x.stopped)) {
      expect(s.roles.status()).toMatchObject({ role: 'sclerotium', dedicated: true })
    }
  })
})
