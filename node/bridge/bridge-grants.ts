// The grants one bridge holds: at most one per direction, each from the administrator of the
// network that direction enters (a grant of B lets the bridge's key in B speak for A; a grant
// of A lets this node's own key in A speak for B). A direction without a grant valid now
// carries nothing: its messages would show as the bridge's own, and its service records'
// origin label would be an unattested claim.
import { grantAdmits, encodeBridgeGrant, bridgeGrantToken, type BridgeGrant } from '../../membership/index.ts'

export type Direction = 'out' | 'in'

export class BridgeGrantMismatchError extends Error {
  readonly name = 'BridgeGrantMismatchError'
}

export interface BridgeGrantsOptions {
  /** this node's network (A) and the bridged one (B) */
  localNetwork: string
  remoteNetwork: string
  /** this node's peer id in A, and the bridge's in B */
  localPeerId: () => string
  remotePeerId: () => string
  clock?: () => number
}

export class BridgeGrants {
  private readonly o: BridgeGrantsOptions
  private readonly clock: () => number
  private readonly held = new Map<Direction, { grant: BridgeGrant, bytes: Uint8Array }>()

  constructor (options: BridgeGrantsOptions) {
    this.o = options
    this.clock = options.clock ?? Date.now
  }

  /** Keeps a grant for the direction it attests (replacing an older one); throws when it fits neither. */
  hold (grant: BridgeGrant): Direction {
    const now = this.clock()
    const direction: Direction | undefined =
      grantAdmits(grant, { networkId: this.o.remoteNetwork, bridge: this.o.remotePeerId(), origin: this.o.localNetwork, now }) ? 'out'
        : grantAdmits(grant, { networkId: this.o.localNetwork, bridge: this.o.localPeerId(), origin: this.o.remoteNetwork, now }) ? 'in'
          : undefined
    if (direction === undefined) {
      if (now >= grant.expiresAt) throw new BridgeGrantMismatchError(`the grant expired at ${new Date(grant.expiresAt).toISOString()}; ask for a new one`)
      throw new BridgeGrantMismatchError(`the grant lets ${grant.bridge} of network ${grant.networkId} speak for ${grant.origin}; this bridge needs one for ${this.o.remotePeerId()} of ${this.o.remoteNetwork} (speaking for ${this.o.localNetwork}) or for ${this.o.localPeerId()} of ${this.o.localNetwork} (speaking for ${this.o.remoteNetwork})`)
    }
    this.held.set(direction, { grant, bytes: encodeBridgeGrant(grant) })
    return direction
  }

  /** The encoded grant to present with what goes this way, when one is valid now. */
  current (direction: Direction): Uint8Array | undefined {
    const held = this.held.get(direction)
    if (held === undefined || this.clock() >= held.grant.expiresAt) return undefined
    return held.bytes
  }

  /** Until when each direction is attested (absent: not attested), for `bridge ls`. */
  view (): { out?: number, in?: number } {
    const out = this.current('out') !== undefined ? this.held.get('out')?.grant.expiresAt : undefined
    const inward = this.current('in') !== undefined ? this.held.get('in')?.grant.expiresAt : undefined
    return { ...(out !== undefined ? { out } : {}), ...(inward !== undefined ? { in: inward } : {}) }
  }

  /** The grants as kept in bridges.json. */
  tokens (): string[] {
    return [...this.held.values()].map(h => bridgeGrantToken(h.grant))
  }
}
