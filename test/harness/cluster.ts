// A network of real node processes: the first creates the network, the others join with
// invites, as operators would do it on separate machines.
import { TestNode, type TestNodeOptions } from './test-node.ts'
import { NetnsLab } from './netns.ts'
import { waitFor } from './wait.ts'

export interface ClusterOptions {
  /** run every node in its own network namespace (needs root) */
  netns?: boolean
  /** per-node options by index */
  node?: (index: number) => Partial<TestNodeOptions>
}

export class Cluster {
  readonly nodes: TestNode[] = []
  readonly lab?: NetnsLab
  private readonly options: ClusterOptions

  constructor (options: ClusterOptions = {}) {
    this.options = options
    if (options.netns === true) this.lab = new NetnsLab()
  }

  newNode (name: string, extra: Partial<TestNodeOptions> = {}): TestNode {
    const host = this.lab?.addHost(name)
    const node = new TestNode({ name, host, ...this.options.node?.(this.nodes.length), ...extra })
    this.nodes.push(node)
    return node
  }

  /** Starts the founder and `size - 1` members joined through single-use invites. */
  async startNetwork (size: number): Promise<TestNode[]> {
    const founder = this.newNode('n0')
    await founder.start()
    const members = Array.from({ length: size - 1 }, (_, i) => this.newNode(`n${i + 1}`))
    await Promise.all(members.map(async (node) => {
      await this.join(node, founder)
      await node.start()
    }))
    return [founder, ...members]
  }

  async invite (from: TestNode, args: string[] = []): Promise<string> {
    const r = await from.cli(['network', 'invite', ...args])
    if (r.code !== 0) throw new Error(`invite failed: ${r.stderr}`)
    return r.stdout.trim()
  }

  /**
   * Joins `node` with an invite of the running `inviter`, asked of its admin API (what `network
   * invite` calls: a CLI process per node costs a second of CPU on a busy machine; the command
   * itself is tested on its own).
   */
  async join (node: TestNode, inviter: TestNode): Promise<void> {
    const { invite } = await inviter.api<{ invite: string }>('/invites', 'POST', { ttlMs: 3_600_000, uses: 1 })
    const r = await node.cli(['join', invite])
    if (r.code !== 0) throw new Error(`join of ${node.name} failed: ${r.stderr}`)
  }

  /** Waits until every running node sees every other running node as a peer. */
  async waitForFullMesh (timeoutMs = 30_000): Promise<void> {
    const running = this.nodes.filter(n => n.running())
    await waitFor(async () => {
      for (const node of running) {
        const peers = new Set((await node.peers()).map(p => p.peerId))
        for (const other of running) if (other !== node && !peers.has(other.peerId)) return false
      }
      return true
    }, { timeoutMs, intervalMs: 250, what: 'a full mesh' })
  }

  async destroy (): Promise<void> {
    await Promise.all(this.nodes.map(async n => { await n.destroy() }))
    this.lab?.destroy()
  }
}
