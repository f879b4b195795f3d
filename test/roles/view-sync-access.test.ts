// Role-view catch-up (roles/balance/role-view-sync.ts) on real libp2p nodes: a verified member
// gets every advertisement the node holds, verbatim; a peer the node does not count as a member
// (a stranger, or one still in its membership handshake) gets nothing, and the node goes on
// serving members.
import { afterEach, describe, expect, it } from 'vitest'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { RoleViewSync } from '../../roles/balance/role-view-sync.ts'

const PROTOCOL = '/mycelium/test/roles/1/view'
const started: Libp2p[] = []

async function host (): Promise<Libp2p> {
  const node = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  started.push(node)
  return node
}

afterEach(async () => {
  for (const node of started.splice(0)) await node.stop()
})

describe('role view catch-up', () => {
  it('answers verified members only', async () => {
    const [server, member, stranger] = [await host(), await host(), await host()]
    const held = [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])]
    const memberId = member.peerId.toString()
    const serving = new RoleViewSync(server, PROTOCOL, () => held, (peerId) => peerId === memberId)
    await serving.start()
    await member.dial(server.getMultiaddrs())
    await stranger.dial(server.getMultiaddrs())

    const asStranger = new RoleViewSync(stranger, PROTOCOL, () => [])
    await expect(asStranger.fetch(server.peerId)).rejects.toThrow()

    const asMember = new RoleViewSync(member, PROTOCOL, () => [])
    expect(await asMember.fetch(server.peerId)).toEqual(held)
    // and again after the stranger's attempt: nothing on the server was harmed
    await expect(asStranger.fetch(server.peerId)).rejects.toThrow()
    expect(await asMember.fetch(server.peerId)).toEqual(held)
  })
})
