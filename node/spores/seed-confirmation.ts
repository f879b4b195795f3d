// Confirming a node listed in a seed file: dial it at a listed address (or where this node
// knows it is now: a restarted node may listen elsewhere) and accept it only if the peer that
// completes the membership handshake there is the listed identity.
import { multiaddr } from '@multiformats/multiaddr'
import type { ConfirmNode } from '../../spores/index.ts'
import type { MyceliumHost } from '../host/index.ts'

export function seedConfirmation (host: () => MyceliumHost, knownAddrs: (peerId: string) => Promise<string[]>, onConfirmed: (peerId: string) => Promise<void>): ConfirmNode {
  return async (peerId, listed, signal) => {
    if (peerId === host().peerId.toString()) return true
    for (const addr of new Set([...listed, ...await knownAddrs(peerId).catch(() => [])])) {
      const target = addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`
      try {
        const conn = await host().dial(multiaddr(target), { signal })
        if (conn.remotePeer.toString() !== peerId) continue
        await onConfirmed(peerId)
        return true
      } catch {
        if (signal.aborted) return false
      }
    }
    return false
  }
}
