// Network namespaces for multi-host tests: every node gets its own namespace and a veth pair
// into a hub namespace holding a bridge, so links can be shaped (tc), cut and healed one by
// one. Addresses are in 10.213.0.0/16, inside namespaces this lab created and removes.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'

function sh (args: string[]): string {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailableReason (): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  try {
    const probe = `mycprobe${randomBytes(3).toString('hex')}`
    sh(['ip', 'netns', 'add', probe])
    sh(['ip', 'netns', 'del', probe])
    sh(['tc', '-V'])
    return undefined
  } catch (err) {
    return `ip netns / tc unavailable: ${(err as Error).message.split('\n')[0]}`
  }
}

export interface LabHost {
  name: string
  namespace: string
  address: string
  /** the veth end in the hub namespace: cut/heal/shape act on it */
  hubLink: string
  /** the veth end inside the host namespace */
  hostLink: string
}

export class NetnsLab {
  readonly id = randomBytes(3).toString('hex')
  readonly hub: string
  readonly hosts: LabHost[] = []
  private subnet: number

  constructor () {
    this.hub = `mychub${this.id}`
    // one /24 per lab so concurrent labs never collide
    this.subnet = 1 + (parseInt(this.id, 16) % 250)
    sh(['ip', 'netns', 'add', this.hub])
    sh(['ip', '-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge'])
    sh(['ip', '-n', this.hub, 'link', 'set', 'br0', 'up'])
    sh(['ip', '-n', this.hub, 'link', 'set', 'lo', 'up'])
  }

  addHost (name: string): LabHost {
    const index = this.hosts.length + 1
    const namespace = `myc${this.id}h${index}`
    const hubLink = `h${index}`
    const hostLink = `eth0`
    const tmp = `myc${this.id}t${index}`
    sh(['ip', 'netns', 'add', namespace])
    sh(['ip', 'link', 'add', tmp, 'type', 'veth', 'peer', 'name', `${tmp}p`])
    sh(['ip', 'link', 'set', tmp, 'netns', this.hub])
    sh(['ip', 'link', 'set', `${tmp}p`, 'netns', namespace])
    sh(['ip', '-n', this.hub, 'link', 'set', tmp, 'name', hubLink])
    sh(['ip', '-n', namespace, 'link', 'set', `${tmp}p`, 'name', hostLink])
    sh(['ip', '-n', this.hub, 'link', 'set', hubLink, 'master', 'br0'])
    sh(['ip', '-n', this.hub, 'link', 'set', hubLink, 'up'])
    const address = `10.213.${this.subnet}.${index}`
    sh(['ip', '-n', namespace, 'addr', 'add', `${address}/24`, 'dev', hostLink])
    sh(['ip', '-n', namespace, 'link', 'set', hostLink, 'up'])
    sh(['ip', '-n', namespace, 'link', 'set', 'lo', 'up'])
    const host = { name, namespace, address, hubLink, hostLink }
    this.hosts.push(host)
    return host
  }

  /** Cuts a host off the network (its link goes down); heal() brings it back. */
  cut (host: LabHost): void {
    sh(['ip', '-n', this.hub, 'link', 'set', host.hubLink, 'down'])
  }

  heal (host: LabHost): void {
    sh(['ip', '-n', this.hub, 'link', 'set', host.hubLink, 'up'])
  }

  /** Shapes a host's outgoing traffic with a token bucket (rate like "100mbit") and optional delay. */
  shape (host: LabHost, options: { rate: string, delayMs?: number }): void {
    sh(['tc', '-n', host.namespace, 'qdisc', 'replace', 'dev', host.hostLink, 'root', 'handle', '1:', 'tbf', 'rate', options.rate, 'burst', '64kb', 'latency', '100ms'])
    if (options.delayMs !== undefined) {
      sh(['tc', '-n', host.namespace, 'qdisc', 'replace', 'dev', host.hostLink, 'parent', '1:1', 'handle', '10:', 'netem', 'delay', `${options.delayMs}ms`])
    }
  }

  unshape (host: LabHost): void {
    try { sh(['tc', '-n', host.namespace, 'qdisc', 'del', 'dev', host.hostLink, 'root']) } catch {}
  }

  destroy (): void {
    for (const host of this.hosts) {
      try { sh(['ip', 'netns', 'del', host.namespace]) } catch {}
    }
    try { sh(['ip', 'netns', 'del', this.hub]) } catch {}
  }
}
