import { describe, it, expect, afterEach } from 'vitest'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { multiaddr } from '@multiformats/multiaddr'
import { RoleController, libp2pRoleEffects, silentLogger } from '../../roles/index.ts'
import { startNode, waitFor } from './nodes.ts'

const HOP = '/libp2p/circuit/relay/0.2.0/hop'

async function relayClient (): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0', '/p2p-circuit'] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify() }
  })
}

describe('role behaviour on a running node', () => {
  const stops: Array<() => Promise<void>> = []
  afterEach(async () => { await Promise.all(stops.splice(0).map(async s => { await s() })) })

  it('switches the relay server and DHT mode at runtime, and clients can use the relay only while it is on', async () => {
    const { node: relay } = await startNode()
    stops.push(async () => { await relay.stop() })
    const controller = new RoleController({ effects: libp2pRoleEffects({ dht: relay.services.dht, relay: relay.services.relay }), log: silentLogger })

    await controller.apply('hyphae', false, { vmBackups: false })
    expect(relay.services.dht.getMode()).toBe('client')
    expect(relay.getProtocols()).not.toContain(HOP)

    await controller.apply('rhizomorph', false, { vmBackups: true })
    expect(controller.current()).toMatchObject({ role: 'rhizomorph', relay: 'limited', dht: 'server', vmBackups: true, committee: false })
    expect(relay.services.dht.getMode()).toBe('server')
    expect(relay.getProtocols()).toContain(HOP)

    // a client behind the relay gets a reservation, and a third node reaches it through the relay
    const client = await relayClient()
    const other = await relayClient()
    stops.push(async () => { await client.stop() }, async () => { await other.stop() })
    await client.dial(relay.getMultiaddrs()[0])
    await waitFor(() => client.getMultiaddrs().some(a => a.toString().includes('/p2p-circuit')), 10_000, 'a relay reservation')
    const viaRelay = multiaddr(`${relay.getMultiaddrs()[0].toString()}/p2p-circuit/p2p/${client.peerId.toString()}`)
    const relayed = await other.dial(viaRelay)
    expect(relayed.remoteAddr.toString()).toContain('/p2p-circuit')
    expect(relayed.limits).toBeDefined()

    await controller.apply('sclerotium', true, { vmBackups: true })
    expect(controller.current()).toMatchObject({ role: 'sclerotium', dedicated: true, relay: 'full', committee: true, servesBrowserClient: true })
    expect(relay.getProtocols()).toContain(HOP)

    await controller.apply('hyphae', false, { vmBackups: true })
    expect(relay.getProtocols()).not.toContain(HOP)
    expect(relay.services.dht.getMode()).toBe('client')
    const third = await relayClient()
    stops.push(async () => { await third.stop() })
    await expect(third.dial(viaRelay, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
  })
})
