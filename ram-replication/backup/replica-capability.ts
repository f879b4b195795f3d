// What a node can host: asked before it is chosen as a backup, so a VM is never placed where it
// could not resume (an engine the node lacks, too little memory). The KVM engine runs the guest
// natively, so it needs an x86-64 host with a usable /dev/kvm; the interpreted engine runs the
// same guest on any host (a Raspberry Pi included), at interpreter speed.
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import type { ReplicationNode } from '../transport/protocols.ts'
import type { GuestEngine } from '../vmm/running-guest.ts'
import { GUEST_ENGINES } from '../vmm/running-guest.ts'

export interface ReplicaCapability {
  /** process.arch of the node */
  arch: string
  /** the host's memory page size (4 KiB on x86-64; 16 KiB on 64-bit Raspberry Pi 5 kernels) */
  hostPageSize: number
  /** engines this node can resume a guest on */
  engines: GuestEngine[]
  /** guest memory this node would still take as replicas */
  freeReplicaBytes: number
}

const MAX_BYTES = 1024
const ASK_TIMEOUT_MS = 1500

export function capabilityProtocol (prefix: string): string {
  return `${prefix.endsWith('/') ? prefix.slice(0, -1) : prefix}/ram/capability/1.0.0`
}

export class InvalidCapabilityError extends Error {
  readonly name = 'InvalidCapabilityError'
}

/** Decoded once, from a peer's answer: anything else is an error, and the peer is not a backup. */
export function decodeCapability (bytes: Uint8Array): ReplicaCapability {
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (error) {
    throw new InvalidCapabilityError(`capability is not JSON: ${(error as Error).message}`)
  }
  if (raw === null || typeof raw !== 'object') throw new InvalidCapabilityError('capability is not an object')
  const c = raw as Record<string, unknown>
  if (typeof c.arch !== 'string' || !/^[a-z0-9_]{1,16}$/.test(c.arch)) throw new InvalidCapabilityError('capability.arch is not an architecture name')
  if (typeof c.hostPageSize !== 'number' || !Number.isSafeInteger(c.hostPageSize) || c.hostPageSize < 4096 || c.hostPageSize > 1 << 21 || (c.hostPageSize & (c.hostPageSize - 1)) !== 0) throw new InvalidCapabilityError('capability.hostPageSize is not a page size')
  if (!Array.isArray(c.engines) || !c.engines.every(e => (GUEST_ENGINES as readonly unknown[]).includes(e))) throw new InvalidCapabilityError('capability.engines lists an unknown engine')
  if (typeof c.freeReplicaBytes !== 'number' || !Number.isSafeInteger(c.freeReplicaBytes) || c.freeReplicaBytes < 0) throw new InvalidCapabilityError('capability.freeReplicaBytes is not a byte count')
  return { arch: c.arch, hostPageSize: c.hostPageSize, engines: [...new Set(c.engines as GuestEngine[])], freeReplicaBytes: c.freeReplicaBytes }
}

/** Why a node with `capability` cannot back up a guest of `memoryBytes` on `engine`, or undefined. */
export function cannotHost (capability: ReplicaCapability, need: { engine: GuestEngine, memoryBytes: number }): string | undefined {
  if (!capability.engines.includes(need.engine)) return `cannot run the ${need.engine} engine (${capability.arch}; runs ${capability.engines.join(', ') || 'none'})`
  if (capability.freeReplicaBytes < need.memoryBytes) return `has room for ${Math.floor(capability.freeReplicaBytes / 1048576)} MiB of replicas, the guest needs ${Math.ceil(need.memoryBytes / 1048576)} MiB`
  return undefined
}

export class CapabilityService {
  private readonly node: ReplicationNode
  private readonly protocol: string
  private readonly capability: () => ReplicaCapability

  constructor (node: ReplicationNode, options: { protocolPrefix: string, capability: () => ReplicaCapability }) {
    this.node = node
    this.protocol = capabilityProtocol(options.protocolPrefix)
    this.capability = options.capability
  }

  local (): ReplicaCapability {
    return this.capability()
  }

  async start (): Promise<void> {
    await this.node.handle(this.protocol, (stream) => { void this.answer(stream) }, { maxInboundStreams: 32 })
  }

  async stop (): Promise<void> {
    await this.node.unhandle(this.protocol)
  }

  /** A peer's capability, or the reason it could not be learned. */
  async ask (peer: string): Promise<ReplicaCapability | Error> {
    const signal = AbortSignal.timeout(ASK_TIMEOUT_MS)
    let stream: Stream | undefined
    try {
      stream = await this.node.dialProtocol(peerIdFromString(peer), this.protocol, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_BYTES })
      await lp.write(new Uint8Array([1]), { signal })
      const capability = decodeCapability((await lp.read({ signal })).subarray())
      await stream.close({ signal }).catch(() => {})
      return capability
    } catch (error) {
      stream?.abort(error as Error)
      return error as Error
    }
  }

  private async answer (stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(5000)
    try {
      const lp = lpStream(stream, { maxDataLength: 16 })
      await lp.read({ signal })
      await lp.write(new TextEncoder().encode(JSON.stringify(this.capability())), { signal })
      await stream.close({ signal }).catch(() => {})
    } catch (error) {
      stream.abort(error as Error)
    }
  }
}
