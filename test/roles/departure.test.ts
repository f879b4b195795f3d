// Role advertisements refreshed once a minute, over real libp2p nodes in a chain (each linked to
// its neighbours only, so most nodes never hold a link to the one that dies): an idle network
// sends nothing on the roles topic; a newcomer and a healed partition catch up from one peer
// at once; a crashed node leaves every view within seconds through its neighbour's departure
// notice, not when its entry ages out (3 minutes); a replay of its last advertisement brings it
// back nowhere; a false departure about a live node is undone by the node itself.
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Message } from '@libp2p/gossipsub'
import { RoleService, libp2pRoleEffects, loadHardwareProfile, decodeRoleAdvertisement, encodeRoleDeparture } from '../../roles/index.ts'
import { startNode, waitFor, quietLog, ROLE_TOPIC, type RoleTestNode } from './nodes.ts'

// a 200 ms evaluation tick; the refresh (and so the 3-minute ttl) is far beyond the test
const timing = { advertiseIntervalMs: 200, refreshIntervalMs: 60_000, suspectGraceMs: 300, settleMs: 400, confirmMs: 300, hysteresisMs: 600_000, powerPollIntervalMs: 60_000, hardwareIntervalMs: 60_000 }

interface Member { name: string, node: RoleTestNode, roles: RoleService, secretKey: Uint8Array, deny: Set<string>, stopped: boolean }

describe('role advertisements on a slow refresh, across real libp2p nodes', () => {
  const members: Member[] = []
  let dataDir: string | undefined

  afterEach(async () => {
    await Promise.all(members.splice(0).filter(m => !m.stopped).map(async m => { await m.roles.stop(); await m.node.stop() }))
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
  })

  async function member (name: string): Promise<Member> {
    dataDir ??= mkdtempSync(join(tmpdir(), 'mycelium-departure-'))
    const deny = new Set<string>()
    const { node, secretKey } = await startNode(deny)
    const roles = new RoleService({
      host: node,
      pubsub: node.services.pubsub,
      secretKey,
      topic: ROLE_TOPIC,
      effects: libp2pRoleEffects({ dht: node.services.dht, relay: node.services.relay }),
      dataDir,
      override: 'rhizomorph',
      profile: loadHardwareProfile('server-kvm'),
      log: quietLog,
      timing
    })
    const m = { name, node, roles, secretKey, deny, stopped: false }
    members.push(m)
    return m
  }

  const id = (m: Member): string => m.node.peerId.toString()
  const live = (): Member[] => members.filter(m => !m.stopped)
  const seqAt = (at: Member, of: Member): number | undefined => at.roles.advertisements().find(a => a.peerId === id(of))?.seq
  const holds = (at: Member, of: Member): boolean => seqAt(at, of) !== undefined
  const everyoneHolds = (of: Member[]): boolean => live().every(m => of.every(o => o === m || holds(m, o)))

  it('sends nothing idle, catches up newcomers and healed partitions, drops crashed nodes within seconds and refuses replays', async () => {
    const [a, b, c, d, e] = [await member('a'), await member('b'), await member('c'), await member('d'), await member('e')]
    const chain = [a, b, c, d, e]
    for (let i = 0; i + 1 < chain.length; i++) await chain[i].node.dial(chain[i + 1].node.getMultiaddrs()[0])
    // what a (later a Byzantine member) hears on the roles topic, by origin
    const heard = new Map<string, Uint8Array>()
    let messagesAtA = 0
    a.node.services.pubsub.addEventListener('message', (evt: CustomEvent<Message>) => {
      if (evt.detail.topic !== ROLE_TOPIC) return
      messagesAtA++
      try { heard.set(decodeRoleAdvertisement(evt.detail.data, ROLE_TOPIC).peerId, evt.detail.data) } catch {}
    })
    await Promise.all(chain.map(async m => { await m.roles.start() }))
    await waitFor(() => everyoneHolds(chain), 10_000, 'every node to hold every other node\'s advertisement')

    // idle, once the joins' repeats (after 1, 2, 4, 8 ticks) are over: ten evaluation ticks and
    // not one message on the roles topic
    await new Promise(resolve => setTimeout(resolve, 4_000))
    const seqs = chain.map(o => seqAt(a, o))
    const idleFrom = messagesAtA
    await new Promise(resolve => setTimeout(resolve, 2_000))
    expect(messagesAtA - idleFrom).toBe(0)
    expect(chain.map(o => seqAt(a, o))).toEqual(seqs)

    // a newcomer linked to c alone holds everyone's advertisement at once, and not from a refresh
    const f = await member('f')
    await f.node.dial(c.node.getMultiaddrs()[0])
    const joinedAt = Date.now()
    await f.roles.start()
    await waitFor(() => chain.every(o => holds(f, o)) && chain.every(o => holds(o, f)), 5_000, 'the newcomer to catch up')
    expect(Date.now() - joinedAt).toBeLessThan(5_000)
    // the same advertisements the others hold: handed over, not refreshed (c, which f dialled, re-advertised once: it met a node it did not know)
    for (const o of [a, b, d, e]) expect(seqAt(f, o)).toBe(seqAt(o === a ? b : a, o))

    // a Byzantine b names c gone while c is alive: c hears it and re-advertises; all hold c again
    const before = seqAt(a, c) as number
    await b.node.services.pubsub.publish(ROLE_TOPIC, encodeRoleDeparture({ peerId: id(c), seq: before, witness: id(b), issuedAt: Date.now() }, b.secretKey, ROLE_TOPIC))
    await waitFor(() => live().every(m => m === c || (seqAt(m, c) ?? 0) > before), 5_000, 'c to re-advertise after a false departure')

    // e crashes (no goodbye): only d held a link to it; every view drops it within seconds
    const lastOfE = heard.get(id(e)) as Uint8Array
    expect(lastOfE).toBeDefined()
    e.stopped = true
    const crashedAt = Date.now()
    await e.node.stop()
    await waitFor(() => live().every(m => !holds(m, e)), 5_000, 'every view to drop the crashed node')
    expect(Date.now() - crashedAt).toBeLessThan(5_000)
    // a replays e's last advertisement (published under a's own gossipsub envelope): refused everywhere
    await a.node.services.pubsub.publish(ROLE_TOPIC, lastOfE)
    await new Promise(resolve => setTimeout(resolve, 1_000))
    expect(live().filter(m => holds(m, e)).map(m => m.name)).toEqual([])

    // f stops cleanly: it says so itself, and every view drops it at once
    f.stopped = true
    await f.roles.stop()
    await f.node.stop()
    await waitFor(() => live().every(m => !holds(m, f)), 3_000, 'every view to drop a node that stopped')

    // {a, b} | {c, d} partitioned: each side drops the nodes of the other it held links to
    const sides = [[a, b], [c, d]]
    const cut = [a, b].flatMap(m => [c, d].filter(o => m.node.getConnections(o.node.peerId).length > 0).map(o => [m, o]))
    for (const [i, side] of sides.entries()) for (const m of side) for (const o of sides[1 - i]) m.deny.add(id(o))
    await Promise.all(cut.map(async ([m, o]) => { await m.node.hangUp(o.node.peerId) }))
    await waitFor(() => [a, b].every(m => !holds(m, c)) && [c, d].every(m => !holds(m, b)), 5_000, 'each side to drop the other side\'s border nodes')
    // healed: the cut links come back (a daemon's link keeper re-dials its kept links), and every
    // node holds every other well before a refresh (60 s): each node named gone across the cut
    // meets a peer it does not hold and re-advertises
    for (const m of [a, b, c, d]) m.deny.clear()
    const healedAt = Date.now()
    await Promise.all(cut.map(async ([m, o]) => await m.node.dial(o.node.getMultiaddrs()[0])))
    await waitFor(() => everyoneHolds([a, b, c, d]), 5_000, 'the healed partition to converge')
    expect(Date.now() - healedAt).toBeLessThan(5_000)
  }, 60_000)
})
