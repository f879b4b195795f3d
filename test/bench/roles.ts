// npm run bench:roles — how long the hardware probe takes, RTT and throughput of the probe
// protocol on loopback, and how fast in-process nodes converge to their sclerotia and
// replace a lost one (advertisement interval 500 ms, as in the tests).
import { tmpdir } from 'node:os'
import { probeHardware, RoleService, libp2pRoleEffects, loadHardwareProfile, type BuiltInProfileName } from '../../roles/index.ts'
import { startNode, waitFor, quietLog, ROLE_TOPIC, type RoleTestNode } from '../roles/nodes.ts'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)

async function probeTimes (): Promise<void> {
  const times: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const start = performance.now()
    await probeHardware({ dataDir: tmpdir() })
    times.push(performance.now() - start)
  }
  console.log(`hardware probe: median ${median(times).toFixed(0)} ms over ${ROUNDS} runs`)
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]
}

async function probeProtocol (): Promise<void> {
  const a = (await startNode()).node
  const b = (await startNode()).node
  try {
    await a.dial(b.getMultiaddrs()[0])
    const rtts: number[] = []
    const mbps: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      rtts.push((await a.services.probe.measureRtt(b.peerId, { rounds: 8 })).rttMs)
      mbps.push((await a.services.probe.measureThroughput(b.peerId, { bytes: 1024 * 1024 })).mbps)
    }
    const start = performance.now()
    const dial = await a.services.probe.requestDialBack(b.peerId, [a.getMultiaddrs()[0]])
    console.log(`probe protocol on loopback: RTT median ${median(rtts).toFixed(2)} ms, throughput (1 MiB) median ${median(mbps).toFixed(0)} Mbit/s, dial-back ${dial[0].reachable ? 'reachable' : 'unreachable'} in ${(performance.now() - start).toFixed(0)} ms`)
  } finally {
    await a.stop()
    await b.stop()
  }
}

async function convergence (): Promise<void> {
  const profiles: BuiltInProfileName[] = ['server-kvm', 'server-kvm', 'raspberry-pi-4', 'raspberry-pi-4', 'raspberry-pi-4', 'raspberry-pi-4', 'laptop-mains', 'laptop-mains', 'pi-zero-2w', 'pi-zero-2w', 'laptop-battery', 'unreachable']
  const members: Array<{ node: RoleTestNode, roles: RoleService }> = []
  try {
    for (const p of profiles) {
      const { node, secretKey } = await startNode()
      const roles = new RoleService({
        host: node, pubsub: node.services.pubsub, secretKey, topic: ROLE_TOPIC, dataDir: tmpdir(), log: quietLog,
        effects: libp2pRoleEffects({ dht: node.services.dht, relay: node.services.relay }),
        profile: loadHardwareProfile(p),
        timing: { advertiseIntervalMs: 500, settleMs: 1_500, confirmMs: 800, suspectGraceMs: 300, hysteresisMs: 60_000 }
      })
      members.push({ node, roles })
    }
    await Promise.all(members.flatMap((m, i) => [1, 3].map(async d => await m.node.dial(members[(i + d) % members.length].node.getMultiaddrs()[0]))))
    const started = performance.now()
    await Promise.all(members.map(async m => { await m.roles.start() }))
    const sclerotia = (): typeof members => members.filter(m => m.node.status === 'started' && m.roles.status().role === 'sclerotium')
    await waitFor(() => sclerotia().length === 3, 30_000, 'three sclerotia')
    console.log(`${members.length} nodes (target 3): 3 sclerotia after ${(performance.now() - started).toFixed(0)} ms (settle 1500 ms + confirm 800 ms)`)
    const lost = sclerotia()[0]
    const stopped = performance.now()
    await lost.roles.stop()
    await lost.node.stop()
    await waitFor(() => sclerotia().length === 3, 30_000, 'a replacement')
    console.log(`replacement sclerotium ${(performance.now() - stopped).toFixed(0)} ms after one stopped`)
  } finally {
    await Promise.all(members.filter(m => m.node.status === 'started').map(async m => { await m.roles.stop(); await m.node.stop() }))
  }
}

await probeTimes()
await probeProtocol()
await convergence()
